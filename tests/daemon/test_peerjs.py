"""PeerJS signaling against a real daemon: the reference `peer` server's wire protocol, with short
timeouts; access by TradSys token; the bounds on what peers can make the daemon hold, and its memory
under anonymous and authenticated floods."""

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.daemon.auth import issue_token
from tradsys.daemon.peerjs_queues import OVERHEAD

CONFIG = """
[market]
simulate = false

[peerjs]
expire_timeout = 0.5
alive_timeout = 1.5
cleanup_interval = 0.1
concurrent_limit = 20
queue_limit = 20
queue_bytes = 65536
peer_bytes = 131072
waiting_limit = 10
total_bytes = 262144
"""
BIG = 30_000
"""Payload of a large test message: two fit in queue_bytes, four in peer_bytes, eight in total_bytes."""


@pytest.fixture(scope="module")
def pjd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home: Path = tmp_path_factory.mktemp("pjhome")
    (home / "config.toml").write_text(CONFIG)
    proc = start_daemon(home)
    yield proc
    if proc.proc.poll() is None:
        proc.kill(15)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def viewer(d: DaemonProcess, ttl: timedelta | None = None, subject: str = "peer") -> str:
    """A viewer token: the least a peer needs."""
    return issue_token(bytes.fromhex((d.home / "secret.key").read_text().strip()), "viewer", ttl=ttl, subject=subject)


def url(d: DaemonProcess, pid: str, token: str = "tok", key: str | None = None, path: str = "/peerjs") -> str:
    return f"ws://{d.http}{path}?key={key or viewer(d)}&id={pid}&token={token}"


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def get(d: DaemonProcess, path: str, bearer: str | None = None) -> tuple[int, bytes]:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://{d.http}{path}", headers=headers)) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def stats(d: DaemonProcess) -> dict[str, Any]:
    status, body = get(d, "/peerjs/stats", bearer=viewer(d))
    assert status == 200, body
    return json.loads(body)


def rss_mb(d: DaemonProcess, field: str = "VmRSS") -> float:
    """The daemon's resident memory (VmHWM: its peak so far), from /proc."""
    for line in (Path("/proc") / str(d.proc.pid) / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for pid {d.proc.pid}")


@pytest.mark.parametrize("path", ["/peerjs", "/peerjs/ws"])
def test_open_and_relay_offer_answer_candidate_with_src(pjd: DaemonProcess, path: str) -> None:
    """`src` and `subject` (the sender's token's) are the server's, whatever the sender wrote."""
    async def main() -> None:
        a_id, b_id = f"a{path[-2:]}", f"b{path[-2:]}"
        async with connect(url(pjd, a_id, path=path, key=viewer(pjd, subject="alice"))) as a, \
                connect(url(pjd, b_id, path=path, key=viewer(pjd, subject="bob"))) as b:
            assert await recv(a) == {"type": "OPEN"} and await recv(b) == {"type": "OPEN"}
            for kind, src, dst, sender in [("OFFER", a, b_id, a), ("ANSWER", b, a_id, b), ("CANDIDATE", a, b_id, a)]:
                payload = {"sdp": {"type": kind.lower(), "sdp": "v=0"}, "connectionId": "dc_1"}
                await sender.send(json.dumps({"type": kind, "dst": dst, "src": "spoofed", "subject": "admin",
                                              "payload": payload}))
                receiver = b if dst == b_id else a
                got = await recv(receiver)
                assert got["type"] == kind and got["payload"] == payload and got["dst"] == dst
                assert got["src"] == (a_id if sender is a else b_id), "src must be set by the server"
                assert got["subject"] == ("alice" if sender is a else "bob"), "subject must be set by the server"
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
            assert stats(pjd)["peers"] >= 1
            with pytest.raises(TimeoutError):  # chatty heartbeated, so it is still connected
                await asyncio.wait_for(chatty.recv(), 0.2)

    run(main())


def test_http_id_peers_and_stats_with_the_token_as_key_or_bearer(pjd: DaemonProcess) -> None:
    token = viewer(pjd)
    status, body = get(pjd, f"/{token}/id")  # what the client fetches with {path: "/", key: token}
    assert status == 200 and len(body.decode()) == 36
    assert get(pjd, f"/peerjs/{token}/id")[0] == 200  # with {path: "/peerjs"}
    assert get(pjd, "/peerjs/id", bearer=token)[1] != body
    assert get(pjd, f"/{token}/peers")[0] == 401  # discovery is off
    status, body = get(pjd, "/peerjs/stats", bearer=token)
    counters = json.loads(body)
    assert status == 200 and {"peers", "queued_messages", "held_bytes", "relayed", "expired", "dropped"} <= set(counters)
    assert counters["relayed"].get("OFFER", 0) >= 1
    metrics = get(pjd, "/metrics")[1].decode()  # Prometheus scrapes without a token
    assert "tradsys_peerjs_peers" in metrics and "tradsys_peerjs_held_bytes" in metrics


def test_anonymous_peers_and_requests_are_refused(pjd: DaemonProcess) -> None:
    async def main() -> None:
        for bad, code in [("peerjs", "missing"), ("not-a-token", "malformed"),
                          (issue_token(b"\x01" * 32, "admin"), "bad_signature")]:
            async with connect(url(pjd, "anon", key=bad)) as ws:
                got = await recv(ws)
                assert got["type"] == "ERROR" and got["payload"]["msg"].startswith(f"Invalid key provided: {code}"), got
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

    before = stats(pjd)["refused"].get("unauthenticated", 0)
    run(main())
    for path in ["/peerjs/id", "/peerjs/peers", "/peerjs/stats", "/peerjs/peerjs/id", "/not-a-token/id"]:
        status, body = get(pjd, path)
        assert status == 401 and body.startswith(b"unauthenticated: "), (path, body)
    assert get(pjd, "/peerjs/stats", bearer="not-a-token")[0] == 401
    assert stats(pjd)["refused"]["unauthenticated"] - before == 3 + 6
    assert get(pjd, "/health")[0] == 200 and get(pjd, "/metrics")[0] == 200


def test_a_session_ends_when_its_token_expires(pjd: DaemonProcess) -> None:
    async def main() -> None:
        async with connect(url(pjd, "brief", key=viewer(pjd, ttl=timedelta(seconds=1)))) as ws:
            assert (await recv(ws))["type"] == "OPEN"
            got = await recv(ws, timeout=10)
            assert got == {"type": "ERROR", "payload": {"msg": "token expired"}}
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

    run(main())
    eventually(lambda: stats(pjd)["peers"] == 0)


def _settled(d: DaemonProcess) -> dict[str, Any]:
    """Stats once nothing is held: every queued message delivered or expired, every charge released."""
    return eventually(lambda: (c := stats(d))["held_bytes"] == 0 and c["waiting_peers"] == 0 and c)


# (bound, senders, absent destinations per sender, messages per destination, payload, messages over the bound)
BOUNDS = [
    ("queue_limit", 1, 1, 25, 10, 5),
    ("queue_bytes", 1, 1, 3, BIG, 1),
    ("peer_bytes", 1, 5, 1, BIG, 1),
    ("waiting_limit", 1, 12, 1, 10, 2),
    ("total_bytes", 3, 3, 1, BIG, 1),
]


@pytest.mark.parametrize(("bound", "senders", "dsts", "each", "size", "over"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_each_bound_drops_what_passes_it_and_tells_the_sender(
        pjd: DaemonProcess, bound: str, senders: int, dsts: int, each: int, size: int, over: int) -> None:
    before = _settled(pjd)["dropped"].get(bound, 0)

    async def main() -> list[dict[str, Any]]:
        socks = [await connect(url(pjd, f"{bound}-s{i}")) for i in range(senders)]
        try:
            for ws in socks:
                assert (await recv(ws))["type"] == "OPEN"
            for i, ws in enumerate(socks):
                for j in range(dsts):
                    for _ in range(each):
                        dst = f"{bound}-absent-{i}-{j}"
                        await ws.send(json.dumps({"type": "OFFER", "dst": dst, "payload": {"sdp": "x" * size}}))
            last = socks[-1]
            return [await recv(last) for _ in range(over)]  # the refused, before any timeout
        finally:
            for ws in socks:
                await ws.close()

    told = run(main())
    last = senders - 1
    refused = [f"{bound}-absent-{last}-{j}" for j in range(dsts)][-over:] if each == 1 else [f"{bound}-absent-0-0"] * over
    assert told == [{"type": "EXPIRE", "src": dst, "dst": f"{bound}-s{last}"} for dst in refused]
    after = _settled(pjd)  # charges are released when messages expire: nothing leaks
    assert after["dropped"][bound] - before == over


def test_a_peer_that_does_not_read_is_held_at_most_queue_bytes(pjd: DaemonProcess) -> None:
    before = _settled(pjd)["dropped"].get("queue_bytes", 0)

    async def main() -> None:
        async with connect(url(pjd, "sleeper"), max_queue=1) as sleeper, connect(url(pjd, "talker")) as talker:
            assert (await recv(sleeper))["type"] == "OPEN" and (await recv(talker))["type"] == "OPEN"
            offer = json.dumps({"type": "OFFER", "dst": "sleeper", "payload": {"sdp": "x" * BIG}})

            async def flood_until_told() -> dict[str, Any]:
                while True:  # the kernel's socket buffers take some first; then the outbox fills
                    await talker.send(offer)
                    try:
                        return await recv(talker, timeout=0.01)
                    except TimeoutError:
                        continue

            told = await asyncio.wait_for(flood_until_told(), 30)
            assert told == {"type": "EXPIRE", "src": "sleeper", "dst": "talker"}
            assert stats(pjd)["held_bytes"] <= 65536 + 2 * (BIG + OVERHEAD)  # the outbox, plus the EXPIREs told

    run(main())
    assert _settled(pjd)["dropped"]["queue_bytes"] > before


def test_open_server_takes_the_public_key_and_lists_peers(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[peerjs]\nopen = true\nallow_discovery = true\n[market]\nsimulate = false\n")
    d = start_daemon(tmp_path)
    try:
        async def main() -> None:
            async with connect(url(d, "visible", key="peerjs")) as ws, connect(url(d, "other", key="peerjs")) as other:
                assert (await recv(ws))["type"] == "OPEN" and (await recv(other))["type"] == "OPEN"
                await other.send(json.dumps({"type": "OFFER", "dst": "visible", "subject": "admin", "payload": {}}))
                assert "subject" not in await recv(ws), "a peer without a token has no subject to vouch for"
                status, body = get(d, "/peerjs/peers")
                assert status == 200 and json.loads(body) == ["other", "visible"]
                assert get(d, "/peerjs/id")[0] == 200
                assert get(d, "/peerjs/stats", bearer="not-a-token")[0] == 401  # a token given is checked

        run(main())
    finally:
        d.kill(15)


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon with the default [peerjs] bounds and nothing else running, for memory figures. Held
    messages do not expire during a test: the worst case for memory, and counts that do not depend on timing."""
    (tmp_path / "config.toml").write_text("[market]\nsimulate = false\n[peerjs]\nexpire_timeout = 600\n")
    d = start_daemon(tmp_path)
    yield d
    d.kill(15)


def _warm(d: DaemonProcess) -> float:
    """The daemon's RSS once a peer has come and gone (its code paths loaded)."""
    async def once() -> None:
        async with connect(url(d, "warm")) as ws:
            assert (await recv(ws))["type"] == "OPEN"

    run(once())
    stats(d)
    return rss_mb(d)


def test_an_anonymous_flood_is_refused_outright_and_costs_under_100_mb(plain: DaemonProcess) -> None:
    """The measured attack: 195 KB OFFERs to 50 destinations that do not exist, here from 25 clients at once."""
    base = _warm(plain)
    payload = {"sdp": "x" * 195_000}

    def client(i: int) -> str:
        """A blocking client per thread: asyncio's selector transport can fail its own abort when the server
        closes while a large write is still buffered (CPython; see anyio#1250), which is the client's bug."""
        with sync_connect(url(plain, f"anon{i}", key="peerjs"), max_size=None, open_timeout=30) as ws:
            first = json.loads(ws.recv(timeout=30))["type"]
            try:
                for j in range(50):
                    ws.send(json.dumps({"type": "OFFER", "dst": f"ghost{j}", "payload": payload}))
            except ConnectionClosed:
                pass
            return first

    with ThreadPoolExecutor(25) as pool:
        firsts = list(pool.map(client, range(25)))
    statuses = {get(plain, "/peerjs/id")[0] for _ in range(100)}
    growth = rss_mb(plain, "VmHWM") - base
    print(f"\nanonymous flood: daemon RSS {base:.0f} MB, peak +{growth:.0f} MB")
    assert growth < 100, f"an anonymous flood grew the daemon by {growth:.0f} MB"
    assert firsts == ["ERROR"] * 25 and statuses == {401}
    counters = stats(plain)
    assert counters["held_bytes"] == 0 and counters["waiting_peers"] == 0 and counters["relayed_total"] == 0


def test_an_authenticated_flood_is_held_to_the_bounds_and_costs_under_300_mb(plain: DaemonProcess) -> None:
    """As many peers as the default concurrent_limit, all connected at once, each sending a CANDIDATE and
    then the largest OFFER allowed to each of 12 destinations that do not exist: 6,000 destinations, 360 MB."""
    base, token = _warm(plain), viewer(plain)
    peers, dsts, payload = 500, 12, {"sdp": "x" * 60_000}

    async def send(i: int, ws: ClientConnection, kind: str, body: dict[str, str]) -> None:
        for j in range(dsts):
            await ws.send(json.dumps({"type": kind, "dst": f"absent-{i}-{j}", "payload": body}))

    async def leave(ws: ClientConnection) -> None:
        await ws.send(json.dumps({"type": "LEAVE"}))  # handled after the peer's other messages: then closed
        await ws.wait_closed()

    async def main() -> None:
        # max_queue=None: the flooders never read, yet must see the close that follows their LEAVE
        socks = await asyncio.gather(*(connect(url(plain, f"flood{i}", key=token), max_queue=None)
                                       for i in range(peers)))
        assert [(await recv(ws))["type"] for ws in socks] == ["OPEN"] * peers
        await asyncio.gather(*(send(i, ws, "CANDIDATE", {"candidate": "c"}) for i, ws in enumerate(socks)))
        await asyncio.to_thread(eventually, lambda: stats(plain)["dropped"].get("waiting_limit", 0) >= 5000)
        await asyncio.gather(*(send(i, ws, "OFFER", payload) for i, ws in enumerate(socks)))
        await asyncio.gather(*(leave(ws) for ws in socks))

    run(main())
    growth = rss_mb(plain, "VmHWM") - base
    counters = stats(plain)
    print(f"\nauthenticated flood: daemon RSS {base:.0f} MB, peak +{growth:.0f} MB; {counters['held_bytes']} bytes held "
          f"for {counters['waiting_peers']} absent peers; dropped {counters['dropped']}")
    assert growth < 300, f"an authenticated flood grew the daemon by {growth:.0f} MB"
    assert counters["held_bytes"] <= 32 * 1024 * 1024 and counters["waiting_peers"] == 1000
    assert counters["dropped"]["total_bytes"] > 0 and counters["dropped"]["waiting_limit"] > 0
