"""WebSocket bounds with the default send buffer: a reader that stops reading is closed instead of
growing the daemon's send queue, and connections past `[ws] max_connections` are refused."""

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import DaemonProcess, eventually, quoted_daemon
from tradsys.daemon.ws import CLOSE_TRY_AGAIN

CONFIG = """
[ws]
send_timeout = 2.0
max_connections = 4
"""


@pytest.fixture(scope="module")
def wsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    yield from quoted_daemon(tmp_path_factory.mktemp("wsbounds"), CONFIG, "--seed", "13")


def metric(d: DaemonProcess, name: str) -> float:
    text = urllib.request.urlopen(f"http://{d.http}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_reader_that_stops_reading_is_closed(wsd: DaemonProcess) -> None:
    """With a 4 KiB receive buffer and nothing read, the daemon's unsent bytes stop at its send
    buffer; the writer then waits `send_timeout` and closes the connection as too slow."""
    closed = 'tradsys_ws_slow_clients_total{action="closed"}'
    before = metric(wsd, closed)

    async def main() -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", wsd.http_port))
        async with connect(f"ws://{wsd.http}/ws?token={wsd.admin_token()}", sock=sock, max_queue=1) as ws:
            channels = ["orders", "positions",
                        *(f"{kind}:{s}" for kind in ("book", "trades") for s in ("BTC-USD", "ETH-USD", "SOL-USD"))]
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": channels}))
            # read nothing: wait (off the loop) until the daemon counts this connection closed
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: eventually(lambda: metric(wsd, closed) > before, timeout=60))
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)

    asyncio.run(main())


def test_connections_past_the_limit_are_refused_with_1013(wsd: DaemonProcess) -> None:
    async def main() -> None:
        url = f"ws://{wsd.http}/ws?token={wsd.admin_token()}"
        held = [await connect(url) for _ in range(4)]
        try:
            async with connect(url) as extra:
                with pytest.raises(ConnectionClosed) as refused:
                    await asyncio.wait_for(extra.recv(), 10)
                assert refused.value.rcvd is not None and refused.value.rcvd.code == CLOSE_TRY_AGAIN
                assert "max_connections" in refused.value.rcvd.reason
        finally:
            await held.pop().close()
        try:
            async def accepted() -> None:  # a place freed is taken again
                async with connect(url) as again:
                    await again.send(json.dumps({"type": "ping", "id": 1, "ts_ns": 1}))
                    assert json.loads(await asyncio.wait_for(again.recv(), 10))["type"] == "pong"

            for _ in range(50):
                try:
                    await accepted()
                    break
                except ConnectionClosed:
                    await asyncio.sleep(0.1)  # the freed session is still ending; poll again
            else:
                raise AssertionError("no connection accepted after one closed")
        finally:
            for ws in held:
                await ws.close()

    asyncio.run(main())
