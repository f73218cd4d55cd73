"""Unmodified `peerjs` clients in headless Chromium signal through the daemon and exchange trading
signals over WebRTC DataConnections: with each other, and with our Python peer (tradsys.p2p) both ways.

Needs Debian's `chromium` and `tests/e2e/node_modules/peerjs` (both installed by
`scripts/test-deps.sh`, which `make test` runs first); skipped, saying which is missing, without them.
Chromium is driven through its DevTools protocol (no Playwright/Selenium): launched on the page,
polled with `Runtime.evaluate` until the page publishes `window.result`.
"""

import asyncio
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.sync.client import connect

from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.daemon.auth import issue_token, load_secret
from tradsys.p2p import DataConnection, Peer, PeerUnavailable, signaling_url, use_addresses

HERE = Path(__file__).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BUNDLE = HERE / "node_modules" / "peerjs" / "dist" / "peerjs.min.js"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # plain loopback host candidates, no mDNS names
    "--allow-loopback-in-peer-connection",  # 127.0.0.1 candidates, the only ones our Python peer offers
    "--remote-debugging-port=0",
]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (run scripts/test-deps.sh)"),
    pytest.mark.skipif(not BUNDLE.exists(), reason="tests/e2e/node_modules/peerjs is missing (run scripts/test-deps.sh)"),
]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static() -> Iterator[str]:
    """The page, its script and the peerjs bundle from node_modules, on a local HTTP server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(HERE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def signaling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home = tmp_path_factory.mktemp("e2ehome")
    (home / "config.toml").write_text("[market]\nsimulate = false\n")
    proc = start_daemon(home)
    yield proc
    proc.kill(15)


def _devtools_page(profile: Path, proc: subprocess.Popen, deadline: float, marker: str = "page.html") -> str:
    """The DevTools WebSocket URL of the page whose URL holds `marker`, once Chromium has written its port."""
    port_file = profile / "DevToolsActivePort"
    while True:
        if proc.poll() is not None:
            output = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise AssertionError(f"chromium exited with {proc.returncode}: {output}")
        assert time.monotonic() < deadline, "chromium did not open its DevTools port"
        if port_file.exists() and port_file.read_text().strip():
            port = port_file.read_text().split()[0]
            try:
                targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2).read())
            except OSError:
                targets = []
            pages = [t for t in targets if t.get("type") == "page" and marker in t.get("url", "")]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)


def _evaluate(ws: Any, expression: str, seq: list[int]) -> Any:
    seq[0] += 1
    ws.send(json.dumps({"id": seq[0], "method": "Runtime.evaluate",
                        "params": {"expression": expression, "returnByValue": True}}))
    while True:
        reply = json.loads(ws.recv(timeout=10))
        if reply.get("id") == seq[0]:
            return reply.get("result", {}).get("result", {}).get("value")


def _run_page(url: str, expression: str) -> Any:
    """Open `url` in headless Chromium and poll `expression` (JSON text or null) until it has a value."""
    with tempfile.TemporaryDirectory(prefix="tradsys-chromium-") as profile:
        proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", url], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            page = _devtools_page(Path(profile), proc, deadline)
            seq = [0]
            with connect(page, max_size=None) as ws:
                value = None
                while value is None:
                    assert time.monotonic() < deadline, "the page never finished"
                    value = _evaluate(ws, expression, seq)
                    time.sleep(0.2)
        finally:
            _end_session(proc)
    return json.loads(value)


def _end_session(proc: subprocess.Popen) -> None:
    """Stop Chromium and every process it started (they share its session): a child still writing
    to the profile made its removal fail with 'Directory not empty'."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            continue
        try:  # the group outlives its leader until every member has exited
            eventually(lambda: _group_gone(proc.pid), timeout=10)
            break
        except AssertionError:
            continue


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _page_url(static: str, signaling: DaemonProcess, **params: str) -> str:
    host, port = signaling.http.split(":")
    return f"{static}/page.html?{urlencode({'host': host, 'port': port, 'timeout': '30000', **params})}"


def test_two_browser_peers_exchange_a_trading_signal(static: str, signaling: DaemonProcess) -> None:
    """The TradSys token is the PeerJS key; the trader's id comes from the server (`/TOKEN/id`)."""
    token = issue_token(load_secret(signaling.home), "viewer", ttl=timedelta(minutes=10), subject="browser")
    url = _page_url(static, signaling, key=token, strategy="strategy-1")
    outcome = _run_page(url, "window.result ? JSON.stringify(window.result) : null")
    assert outcome["ok"], outcome
    assert outcome["from"] == "strategy-1"
    assert outcome["ack"] == {"type": "ack", "id": "sig-1", "accepted": True}
    assert any(line.startswith('strategy got {"type":"signal"') for line in outcome["log"]), outcome["log"]
    assert any(re.fullmatch(r"trader open as [0-9a-f-]{36}", line) for line in outcome["log"]), outcome["log"]
    stats = _stats(signaling)
    assert stats["relayed"].get("OFFER", 0) >= 1 and stats["relayed"].get("ANSWER", 0) >= 1


def test_an_anonymous_browser_peer_is_refused(static: str, signaling: DaemonProcess) -> None:
    """The stock client's defaults (key "peerjs"): refused on the WebSocket, saying why, and on `/peerjs/id`."""
    before = _refused(signaling)
    url = _page_url(static, signaling, strategy="strategy-2")
    errors = _run_page(url, "Object.keys(window.errors).length == 2 ? JSON.stringify(window.errors) : null")
    assert errors["strategy"].startswith("server-error: Invalid key provided: missing: a TradSys token is required")
    assert errors["trader"].startswith("server-error"), errors  # the client keeps no message for a failed /id
    assert _refused(signaling) - before == 2


def _refused(signaling: DaemonProcess) -> int:
    """Peers and PeerJS HTTP requests refused for their credentials, as the daemon counts them."""
    return _stats(signaling)["refused"].get("unauthenticated", 0)


def _stats(signaling: DaemonProcess) -> dict[str, Any]:
    token = issue_token(load_secret(signaling.home), "viewer", ttl=timedelta(minutes=1), subject="test")
    request = urllib.request.Request(f"http://{signaling.http}/peerjs/stats", headers={"Authorization": f"Bearer {token}"})
    return json.loads(urllib.request.urlopen(request).read())


@pytest.mark.parametrize("serialization", ["binary", "json"])
def test_a_python_peer_and_a_browser_peer_exchange_signals_both_ways(static: str, signaling: DaemonProcess,
                                                                    serialization: str) -> None:
    """The browser connects to the Python peer and gets its signal echoed; the Python peer connects to
    the browser and gets an ack. In binary, bytes survive and a 20,000-character string goes in chunks."""
    token = issue_token(load_secret(signaling.home), "viewer", ttl=timedelta(minutes=10), subject="interop")
    python_id, browser_id = f"python-{serialization}", f"browser-{serialization}"
    use_addresses(["127.0.0.1"])
    python_side: dict[str, Any] = {}
    done = threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(_python_peer(
        signaling, token, python_id, browser_id, serialization, python_side, done)), daemon=True)
    thread.start()
    try:
        eventually(lambda: "ready" in python_side or "error" in python_side, timeout=20)
        url = _page_url(static, signaling, key=token, python=python_id, me=browser_id, serialization=serialization)
        outcome = _run_page(url, "window.result ? JSON.stringify(window.result) : null")
    finally:
        done.set()
        thread.join(20)
        use_addresses(None)
    assert outcome["ok"], (outcome, python_side)
    binary = serialization == "binary"
    assert outcome["echo"] == {"symbol": "BTC-USD", "side": "buy", "strength": 0.7, "sender": browser_id,
                               "padLength": 20000 if binary else 0, **({"blob": [0, 1, 2, 255]} if binary else {})}
    assert python_side["got"]["sender"] == browser_id and python_side["serialization"] == serialization
    assert python_side["ack"] == {"ack": True, "symbol": "ETH-USD", "padLength": 30000 if binary else 0,
                                  **({"blob": [9, 8, 7]} if binary else {})}, python_side


async def _python_peer(signaling: DaemonProcess, token: str, me: str, browser: str, serialization: str,
                       side: dict[str, Any], done: threading.Event) -> None:
    """Echo what the browser sends; connect to the browser (retrying until its page has registered) and
    record its ack."""
    try:
        async with Peer(signaling_url(signaling.http), token, me) as peer:
            side["ready"] = True
            incoming = await peer.accept()
            side["serialization"] = incoming.serialization
            side["got"] = await incoming.recv()
            incoming.send({"echo": side["got"]})
            conn = await _connect_when_there(peer, browser, serialization)
            signal: dict[str, Any] = {"symbol": "ETH-USD", "side": "sell", "sender": me}
            if serialization == "binary":
                signal.update(blob=b"\x09\x08\x07", pad="y" * 30000)
            conn.send(signal)
            side["ack"] = await conn.recv()
            await asyncio.to_thread(done.wait, 30)
    except Exception as exc:
        side["error"] = repr(exc)


async def _connect_when_there(peer: Peer, browser: str, serialization: str) -> DataConnection:
    for _ in range(10):
        try:
            return await peer.connect(browser, serialization=serialization, reliable=True, timeout=20)
        except PeerUnavailable:
            continue
    raise AssertionError(f"the browser peer {browser} never registered")
