"""Two Python peers signal through a real daemon and exchange messages over WebRTC on loopback."""

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import DaemonProcess, start_daemon
from tests.p2p.conftest import CONFIG, peer_key, url
from tradsys.p2p import MessageTooBig, Peer, PeerUnavailable, SignalingError
from tradsys.p2p.serialization import CHUNK_SIZE

T = TypeVar("T")
SIGNAL = {"symbol": "BTC-USD", "side": "buy", "strength": 0.7, "qty": 3, "tags": ["a", None, True], "neg": -40}


def run(coro: Awaitable[T], timeout: float = 30) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


@asynccontextmanager
async def _pair(daemon: DaemonProcess, a: str, b: str) -> AsyncIterator[tuple[Peer, Peer]]:
    """Two started peers, closed on the way out."""
    first, second = Peer(url(daemon), peer_key(daemon, a), a), Peer(url(daemon), peer_key(daemon, b), b)
    await asyncio.gather(first.start(), second.start())
    try:
        yield first, second
    finally:
        await asyncio.gather(first.close(), second.close())


@pytest.mark.parametrize(("serialization", "reliable", "message", "reply"), [
    ("binary", True, SIGNAL, {"ack": True, "blob": b"\x00\xff" * 3}),
    ("binary", False, SIGNAL, {"ack": True}),
    ("default", True, "x" * (CHUNK_SIZE * 3 + 17), {"big": bytes(range(256)) * 200}),
    ("json", True, SIGNAL, {"ack": True}),
    ("raw", False, "plain text", b"\x01\x02 bytes"),
])
def test_two_peers_exchange_messages_through_the_daemon(signaling: DaemonProcess, serialization: str,
                                                        reliable: bool, message: Any, reply: Any) -> None:
    async def scenario() -> None:
        async with _pair(signaling, f"trader-{serialization}-{reliable}",
                         f"strategy-{serialization}-{reliable}") as (trader, strategy):
            conn = await trader.connect(strategy.id, serialization=serialization, reliable=reliable,
                                        metadata={"desk": "t1"})
            incoming = await strategy.accept()
            assert (incoming.peer, incoming.serialization, incoming.reliable, incoming.metadata) == \
                (trader.id, conn.serialization, reliable, {"desk": "t1"})
            conn.send(message)
            assert await incoming.recv() == message
            incoming.send(reply)
            assert await conn.recv() == reply

    run(scenario())


def test_json_refuses_a_message_browsers_would_cut(signaling: DaemonProcess) -> None:
    async def scenario() -> None:
        async with _pair(signaling, "json-big-a", "json-big-b") as (a, b):
            conn = await a.connect(b.id, serialization="json")
            with pytest.raises(MessageTooBig):
                conn.send("x" * CHUNK_SIZE)

    run(scenario())


def test_a_vanished_peer_expires_and_its_sender_is_told(signaling: DaemonProcess) -> None:
    """The offer waits for the absent peer, then the server says EXPIRE and connect() fails. (Once the
    daemon has forgotten the peer: what it had queued for a peer whose socket closed is dropped untold.)"""
    async def scenario() -> None:
        async with _pair(signaling, "expire-sender", "expire-gone") as (sender, gone):
            await gone.close()
            while await asyncio.to_thread(_peer_count, signaling) != 1:  # the sender alone
                await asyncio.sleep(0.05)
            with pytest.raises(PeerUnavailable, match="expire-gone"):
                await sender.connect("expire-gone", timeout=10)
            assert list(sender.expired) == ["expire-gone"]

    run(scenario())


def test_an_id_held_by_another_peer_is_refused(signaling: DaemonProcess) -> None:
    async def scenario() -> None:
        holder = Peer(url(signaling), peer_key(signaling), "taken-id")
        await holder.start()
        try:
            with pytest.raises(SignalingError, match="unavailable-id"):
                await Peer(url(signaling), peer_key(signaling), "taken-id").start()
        finally:
            await holder.close()

    run(scenario())


def test_a_bad_key_is_refused_saying_why(signaling: DaemonProcess) -> None:
    with pytest.raises(SignalingError, match="Invalid key provided"):
        run(Peer(url(signaling), "not-a-token", "nobody").start())


def test_the_server_gives_an_id_when_none_is_asked_for(signaling: DaemonProcess) -> None:
    async def scenario() -> str:
        async with Peer(url(signaling), peer_key(signaling)) as peer:
            return peer.id

    assert len(run(scenario())) == 36


def test_heartbeats_keep_a_peer_registered_and_it_reregisters_after_a_daemon_restart(
        tmp_path: Path) -> None:
    """The server drops a peer silent past alive_timeout (1 s here); ours heartbeats more often. When the
    daemon comes back on the same port, the peer registers again under its id and can be reached."""
    (tmp_path / "config.toml").write_text(CONFIG.replace("expire_timeout", "alive_timeout = 1.0\nexpire_timeout"))
    daemon = start_daemon(tmp_path)

    async def scenario() -> None:
        nonlocal daemon
        steady = Peer(url(daemon), peer_key(daemon), "steady", heartbeat=0.2)
        await steady.start()
        try:
            await asyncio.sleep(2.0)  # twice alive_timeout: a peer without heartbeats would be gone
            assert await asyncio.to_thread(_peer_count, daemon) == 1
            daemon.kill()
            daemon = await asyncio.to_thread(start_daemon, tmp_path, http_port=daemon.http_port)
            await asyncio.wait_for(_reopened(steady), 20)
            assert steady.signaling is not None and steady.signaling.reconnects >= 1
            async with Peer(url(daemon), peer_key(daemon), "caller") as caller:
                conn = await caller.connect("steady", serialization="json", reliable=True)
                conn.send({"after": "restart"})
                assert await (await steady.accept()).recv() == {"after": "restart"}
        finally:
            await steady.close()

    try:
        run(scenario(), timeout=60)
    finally:
        daemon.kill(15)


async def _reopened(peer: Peer) -> None:
    assert peer.signaling is not None
    while not peer.signaling.opened.is_set():
        await asyncio.sleep(0.05)


def _peer_count(daemon: DaemonProcess) -> int:
    """Peers the daemon holds, from its stats (discovery is off)."""
    request = urllib.request.Request(f"http://{daemon.http}/peerjs/stats",
                                     headers={"Authorization": f"Bearer {peer_key(daemon)}"})
    stats = json.loads(urllib.request.urlopen(request, timeout=5).read())
    return int(stats["peers"])
