"""The HTTP port's own bounds (`[http]`): connections past `max_connections` are answered 503 and
closed while every other client keeps being served; an idle plain connection is closed after
`idle_seconds`; REST calls are counted in the metrics."""

import resource
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import DaemonProcess, eventually, quoted_daemon
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc

LIMIT = 6
CONFIG = f"""
[http]
max_connections = {LIMIT}
idle_seconds = "1s"

[ws]
auth_timeout = 300
"""


@pytest.fixture(scope="module")
def httpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    yield from quoted_daemon(tmp_path_factory.mktemp("httpbounds"), CONFIG, "--seed", "17")


def get(d: DaemonProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{d.http}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metrics(d: DaemonProcess) -> dict[str, float]:
    status, text = get(d, "/metrics")
    assert status == 200, text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(("tradsys_http_", "tradsys_rest_"))}


def settled(d: DaemonProcess) -> dict[str, float]:
    """The metrics once this scrape is the only connection open: every earlier one has been closed."""
    return eventually(lambda: (m := metrics(d))["tradsys_http_connections"] == 1 and m, timeout=30)


def test_connections_past_the_limit_are_refused_and_others_served(httpd: DaemonProcess) -> None:
    refused_before = settled(httpd)["tradsys_http_refused_connections_total"]
    with ExitStack() as holders:
        for _ in range(LIMIT):  # WebSocket sessions: not closed as idle, so they hold their places
            holders.enter_context(connect(f"ws://{httpd.http}/ws", open_timeout=30))
        status, body = get(httpd, "/health")
        assert status == 503 and "[http] max_connections" in body, (status, body)
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://{httpd.http}/ws", open_timeout=30)
        assert refused.value.response.status_code == 503
        with httpd.channel() as channel:
            book = md_grpc.MarketDataServiceStub(channel).GetBook(
                md.GetBookRequest(symbol="BTC-USD", depth=1), metadata=httpd.metadata(), timeout=10).book
        assert book.bids and book.asks, "gRPC clients are served while the HTTP port is full"
    after = settled(httpd)
    assert after["tradsys_http_refused_connections_total"] - refused_before >= 2
    assert get(httpd, "/health")[0] == 200


def test_an_idle_connection_is_closed(httpd: DaemonProcess) -> None:
    host, port = httpd.http.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as idle:
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # a head never finished
        assert idle.recv(1024) == b"", "the daemon closes a connection that sends nothing for idle_seconds"


def test_a_flood_of_connections_is_answered_or_closed_never_held(httpd: DaemonProcess) -> None:
    """Five times the limit at once: each gets an answer (200 or 503) or is closed; none hangs, and the
    daemon is back to one open connection (the scrape) afterwards."""
    host, port = httpd.http.split(":")
    sockets = [socket.create_connection((host, int(port)), timeout=30) for _ in range(5 * LIMIT)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

        def outcome(sock: socket.socket) -> str:
            try:
                head = sock.recv(64)
            except ConnectionResetError:
                return "reset"
            return head.split(b" ")[1].decode() if head else "closed"

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(outcome, sockets))
    finally:
        for sock in sockets:
            sock.close()
    assert set(outcomes) <= {"200", "503", "reset", "closed"}, outcomes
    settled(httpd)
    assert get(httpd, "/health")[0] == 200


def test_rest_calls_are_counted(httpd: DaemonProcess) -> None:
    key = 'tradsys_rest_requests_total{method="ListInstruments",status="200"}'
    before = settled(httpd).get(key, 0.0)
    request = urllib.request.Request(f"http://{httpd.http}/api/v1/instruments",
                                     headers={"Authorization": f"Bearer {httpd.admin_token()}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    assert metrics(httpd)[key] == before + 1


def test_the_daemon_raises_its_file_limit_to_what_its_connections_need() -> None:
    """A shell's usual soft limit (here 256) is below what 2,000 connections need; the hard one is not."""
    code = ("import resource; from tradsys.daemon.process import raise_file_limit; "
            "print(raise_file_limit(5000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
    expected = 5000 if hard == resource.RLIM_INFINITY else min(5000, hard)
    assert done.stdout.split() == [str(expected), str(expected)]
