"""PeerJS signaling against a real daemon: the reference `peer` server's wire protocol, with short timeouts."""

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import DaemonProcess, start_daemon

CONFIG = """
[peerjs]
expire_timeout = 0.5
alive_timeout = 1.5
cleanup_interval = 0.1
concurrent_limit = 20
"""


@pytest.fixture(scope="module")
def pjd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home: Path = tmp_path_factory.mktemp("pjhome")
    (home / "config.toml").write_text(CONFIG)
    proc = start_daemon(home)
    yield proc
    if proc.proc.poll() is None:
        proc.kill(15)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def url(d: DaemonProcess, pid: str, token: str = "tok", key: str = "peerjs", path: str = "/peerjs") -> str:
    return f"ws://{d.http}{path}?key={key}&id={pid}&token={token}"


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def get(d: DaemonProcess, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{d.http}{path}") as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("path", ["/peerjs", "/peerjs/ws"])
def test_open_and_relay_offer_answer_candidate_with_src(pjd: DaemonProcess, path: str) -> None:
    async def main() -> None:
        a_id, b_id = f"a{path[-2:]}", f"b{path[-2:]}"
        async with connect(url(pjd, a_id, path=path)) as a, connect(url(pjd, b_id, path=path)) as b:
            assert await recv(a) == {"type": "OPEN"} and await recv(b) == {"type": "OPEN"}
            for kind, src, dst, sender in [("OFFER", a, b_id, a), ("ANSWER", b, a_id, b), ("CANDIDATE", a, b_id, a)]:
                payload = {"sdp": {"type": kind.lower(), "sdp": "v=0"}, "connectionId": "dc_1"}
                await sender.send(json.dumps({"type": kind, "dst": dst, "src": "spoofed", "payload": payload}))
                receiver = b if dst == b_id else a
                got = await recv(receiver)
                assert got["type"] == kind and got["payload"] == payload and got["dst"] == dst
                assert got["src"] == (a_id if sender is a else b_id), "src must be set by the server"
            await a.send(json.dumps({"type": "LEAVE", "dst": b_id}))
            assert (await recv(b))["type"] == "LEAVE"

    run(main())


def test_errors_for_missing_parameters_and_bad_key(pjd: DaemonProcess) -> None:
    async def main() -> None:
        for target, msg in [(f"ws://{pjd.http}/peerjs?key=peerjs&id=x", "No id, token, or key"),
                            (url(pjd, "x", key="other"), "Invalid key")]:
            async with connect(target) as ws:
                got = await recv(ws)
                assert got["type"] == "ERROR" and got["payload"]["msg"].startswith(msg)
                with pytest.raises(ConnectionClosed):
                    await recv(ws)

    run(main())


def test_id_taken_unless_same_token(pjd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(url(pjd, "holder", token="t1")) as first:
            assert (await recv(first))["type"] == "OPEN"
            async with connect(url(pjd, "holder", token="t2")) as thief:
                got = await recv(thief)
                assert got == {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}
            async with connect(url(pjd, "holder", token="t1")) as again:
                await again.send(json.dumps({"type": "HEARTBEAT"}))
                async with connect(url(pjd, "peer2")) as other:
                    assert (await recv(other))["type"] == "OPEN"
                    await other.send(json.dumps({"type": "OFFER", "dst": "holder", "payload": {}}))
                    assert (await recv(again))["src"] == "peer2"  # the re-attached socket gets it

    run(main())


def test_queued_message_delivered_on_connect_and_expire_after_timeout(pjd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(url(pjd, "early")) as early:
            assert (await recv(early))["type"] == "OPEN"
            await early.send(json.dumps({"type": "OFFER", "dst": "late", "payload": {"n": 1}}))
            await asyncio.sleep(0.05)
            async with connect(url(pjd, "late")) as late:
                assert (await recv(late))["type"] == "OPEN"
                got = await recv(late)
                assert got["type"] == "OFFER" and got["src"] == "early" and got["payload"] == {"n": 1}
            await early.send(json.dumps({"type": "OFFER", "dst": "never", "payload": {}}))
            await early.send(json.dumps({"type": "CANDIDATE", "dst": "never", "payload": {}}))
            expired = await recv(early, timeout=5)
            assert expired == {"type": "EXPIRE", "src": "never", "dst": "early"}  # once per destination

    run(main())


def test_silent_peer_dropped_heartbeat_keeps_alive(pjd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(url(pjd, "quiet")) as quiet, connect(url(pjd, "chatty")) as chatty:
            assert (await recv(quiet))["type"] == "OPEN" and (await recv(chatty))["type"] == "OPEN"
            deadline = time.monotonic() + 10
            while True:
                await chatty.send(json.dumps({"type": "HEARTBEAT"}))
                try:
                    await asyncio.wait_for(quiet.recv(), 0.3)
                except TimeoutError:
                    assert time.monotonic() < deadline, "the silent peer was not dropped"
                    continue
                except ConnectionClosed:
                    break
            async with connect(url(pjd, "quiet", token="new-holder")) as again:
                assert (await recv(again))["type"] == "OPEN"  # the id was released, not ID-TAKEN
            await chatty.send(json.dumps({"type": "OFFER", "dst": "nobody", "payload": {}}))
            assert json.loads(get(pjd, "/peerjs/stats")[1])["peers"] >= 1
            with pytest.raises(TimeoutError):  # chatty heartbeated, so it is still connected
                await asyncio.wait_for(chatty.recv(), 0.2)

    run(main())


def test_http_id_peers_and_stats(pjd: DaemonProcess) -> None:
    status, body = get(pjd, "/peerjs/id")
    assert status == 200 and len(body.decode()) == 36
    assert get(pjd, "/peerjs/id")[1] != body
    assert get(pjd, "/peerjs/peers")[0] == 401
    status, body = get(pjd, "/peerjs/stats")
    stats = json.loads(body)
    assert status == 200 and {"peers", "queued_messages", "relayed", "expired"} <= set(stats)
    assert stats["relayed"].get("OFFER", 0) >= 1
    metrics = get(pjd, "/metrics")[1].decode()
    assert "tradsys_peerjs_peers" in metrics


def test_peers_listed_when_discovery_is_enabled(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[peerjs]\nallow_discovery = true\n[market]\nsimulate = false\n")
    d = start_daemon(tmp_path)
    try:
        async def main() -> None:
            async with connect(url(d, "visible")) as ws:
                assert (await recv(ws))["type"] == "OPEN"
                status, body = get(d, "/peerjs/peers")
                assert status == 200 and json.loads(body) == ["visible"]

        run(main())
    finally:
        d.kill(15)
