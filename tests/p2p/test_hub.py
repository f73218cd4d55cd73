"""The daemon's own peer (SignalHub), run in this process against a real daemon's signaling."""

import asyncio
import logging
import queue

import pytest

from tests.conftest import DaemonProcess, eventually, free_port, start_daemon
from tests.p2p.conftest import CONFIG, peer_key, url
from tradsys.daemon.auth import ensure_secrets, issue_token
from tradsys.p2p import Peer, signaling_url
from tradsys.p2p.hub import SignalHub


def test_the_hub_keeps_trying_to_register_until_the_signaling_server_is_up(
        tmp_path: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture) -> None:
    """Its first attempt finds no server and gives up; a later one registers, and a sender reaches it."""
    caplog.set_level(logging.INFO, logger="tradsys.p2p")
    (tmp_path / "config.toml").write_text(CONFIG)
    secret, _ = ensure_secrets(tmp_path)
    port = free_port()
    got: queue.Queue[dict] = queue.Queue()
    hub = SignalHub(signaling_url(f"127.0.0.1:{port}"), issue_token(secret, "viewer", subject="hub"), "late-hub",
                    got.put, attempt_s=1.0)
    try:
        assert not hub.start(timeout=0.1)
        eventually(lambda: "p2p.hub_unregistered id=late-hub" in caplog.text, timeout=30)
        daemon = start_daemon(tmp_path, http_port=port)
        try:
            assert hub.registered.wait(30), caplog.text

            async def send() -> None:
                async with Peer(url(daemon), peer_key(daemon), "late-desk") as desk:
                    conn = await desk.connect("late-hub", serialization="json", reliable=True, timeout=20)
                    conn.send({"symbol": "BTC-USD", "side": "buy", "sender": "late-desk"})
                    await conn.finish()

            asyncio.run(asyncio.wait_for(send(), 60))
            doc = got.get(timeout=20)
        finally:
            daemon.kill(15)
    finally:
        hub.stop()
    assert (doc["symbol"], doc["side"], doc["sender"]) == ("BTC-USD", "buy", "late-desk")


def test_the_hub_delivers_the_signals_of_the_senders_it_names_and_ignores_strangers(signaling: DaemonProcess) -> None:
    """`[p2p] senders`: token subjects, as the daemon vouches for them; a subject a sender writes itself is replaced."""
    got: queue.Queue[dict] = queue.Queue()
    hub = SignalHub(url(signaling), peer_key(signaling, "hub"), "named-hub", got.put, senders=["friend-desk"])
    try:
        assert hub.start(timeout=30)

        async def send(peer_id: str, subject: str, side: str) -> None:
            async with Peer(url(signaling), peer_key(signaling, subject), peer_id) as desk:
                conn = await desk.connect("named-hub", serialization="json", reliable=True, timeout=20)
                conn.send({"symbol": "BTC-USD", "side": side, "sender": peer_id, "subject": "friend-desk"})
                await conn.finish()

        asyncio.run(asyncio.wait_for(send("eve-desk", "eve", "sell"), 60))
        eventually(lambda: hub.ignored == 1, timeout=20)
        asyncio.run(asyncio.wait_for(send("friend-1", "friend-desk", "buy"), 60))
        doc = got.get(timeout=20)
    finally:
        hub.stop()
    assert (doc["side"], doc["sender"], doc["subject"]) == ("buy", "friend-1", "friend-desk")
    assert got.empty() and hub.received == 1
