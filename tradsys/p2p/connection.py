"""A PeerJS data connection: one RTCPeerConnection with one data channel, on aiortc.

The originator makes the channel (`ordered` only when `reliable`, as the JS client does: PeerJS
channels are unordered unless reliable) and sends OFFER; the other side answers. aiortc gathers
every candidate before it finishes a description, so our SDP carries them and we send no CANDIDATE;
the browser trickles its own, which we add. Signaling messages for one connection are handled in
order by one task, so a CANDIDATE never races the OFFER it belongs to.

Received values wait in a queue of `MAX_INBOX` (`recv()`), or go straight to `on_data` when set;
past the bound the newest is dropped and counted in `dropped`.
"""

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any, Final

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from tradsys.p2p.serialization import CLOSE, PENDING, Closing, Codec, codec

log = logging.getLogger("tradsys.p2p")

MAX_INBOX: Final = 10_000
MAX_SIGNALS: Final = 256
"""Signaling messages queued for one connection (an OFFER, an ANSWER and its candidates)."""


class ConnectionClosed(Exception):
    """The data connection is closed (by either side, or its negotiation failed)."""


class PeerUnavailable(ConnectionClosed):
    """The server told us (EXPIRE) that the peer did not take up our connection: it is gone."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"peer-unavailable: could not connect to peer {peer}")
        self.peer = peer


class DataConnection:
    """A data connection to `peer`; `send` a value, `recv` one, `close` to end it."""

    def __init__(self, peer: str, send_signal: Callable[[dict[str, Any]], None], *,
                 connection_id: str | None = None, serialization: str = "binary", reliable: bool = False,
                 label: str | None = None, metadata: Any = None, config: RTCConfiguration | None = None) -> None:
        self.peer = peer
        self.connection_id = connection_id or f"dc_{secrets.token_hex(6)}"
        self.codec: Codec = codec(serialization)
        self.serialization = "binary" if serialization in ("default", "binary-utf8") else serialization
        self.reliable = reliable
        self.label = label or self.connection_id
        self.metadata = metadata
        self.subject = ""
        """The far peer's token subject, as the signaling server vouches for it (set by `Peer`)."""
        self.on_data: Callable[[Any], None] | None = None
        self.dropped = 0
        self.failure: ConnectionClosed | None = None
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._send_signal = send_signal
        self._pc = RTCPeerConnection(config or RTCConfiguration(iceServers=[]))
        self._channel: RTCDataChannel | None = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue(MAX_INBOX)
        self._signals: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_SIGNALS)
        self._task = asyncio.create_task(self._negotiate())
        self._pc.on("datachannel", self._attach)
        self._pc.on("connectionstatechange", self._state_changed)

    @property
    def open(self) -> bool:
        return self.opened.is_set() and not self.closed.is_set()

    # -- negotiation ----------------------------------------------------------------------

    async def offer(self) -> None:
        """Start as the originator: make the channel and send OFFER."""
        self._attach(self._pc.createDataChannel(self.label, ordered=self.reliable))
        await self._pc.setLocalDescription(await self._pc.createOffer())
        self._signal("OFFER", {"sdp": self._description(), "type": "data", "connectionId": self.connection_id,
                               "metadata": self.metadata, "label": self.label, "reliable": self.reliable,
                               "serialization": self.serialization})

    def handle(self, message: dict[str, Any]) -> None:
        """A server message for this connection (OFFER, ANSWER, CANDIDATE), handled in arrival order."""
        try:
            self._signals.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("p2p.signals_dropped peer=%s connection=%s", self.peer, self.connection_id)

    async def _negotiate(self) -> None:
        while True:
            message = await self._signals.get()
            try:
                await self._apply(message)
            except Exception as exc:  # a bad SDP or candidate from the far side ends this connection only
                log.warning("p2p.negotiation_failed peer=%s connection=%s error=%r", self.peer, self.connection_id, exc)
                await self.close()
                return

    async def _apply(self, message: dict[str, Any]) -> None:
        kind, payload = message.get("type"), message.get("payload") or {}
        if kind in ("OFFER", "ANSWER"):
            sdp = payload["sdp"]
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp["sdp"], type=sdp["type"]))
            if kind == "OFFER":
                await self._pc.setLocalDescription(await self._pc.createAnswer())
                self._signal("ANSWER", {"sdp": self._description(), "type": "data",
                                        "connectionId": self.connection_id})
        elif kind == "CANDIDATE":
            candidate = payload.get("candidate") or {}
            line = candidate.get("candidate") or ""
            if not line or " tcp " in line.lower():
                return  # aiortc speaks ICE over UDP only
            ice = candidate_from_sdp(line.split(":", 1)[1] if line.startswith("candidate:") else line)
            ice.sdpMid = candidate.get("sdpMid")
            ice.sdpMLineIndex = candidate.get("sdpMLineIndex")
            await self._pc.addIceCandidate(ice)

    def _description(self) -> dict[str, str]:
        local = self._pc.localDescription
        return {"type": local.type, "sdp": local.sdp}

    def _signal(self, kind: str, payload: dict[str, Any]) -> None:
        self._send_signal({"type": kind, "payload": payload, "dst": self.peer})

    def _attach(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        channel.on("open", self.opened.set)
        channel.on("message", self._received)
        channel.on("close", lambda: asyncio.ensure_future(self.close()))
        if channel.readyState == "open":
            self.opened.set()

    async def _state_changed(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            await self.close()

    # -- data -----------------------------------------------------------------------------

    def _received(self, message: bytes | str) -> None:
        try:
            value = self.codec.decode(message)
        except Closing:
            asyncio.ensure_future(self.close())
            return
        except ValueError as exc:
            log.warning("p2p.undecodable peer=%s serialization=%s error=%r", self.peer, self.serialization, exc)
            return
        if value is PENDING:
            return
        if self.on_data is not None:
            self.on_data(value)
            return
        try:
            self._inbox.put_nowait(value)
        except asyncio.QueueFull:
            self.dropped += 1

    def send(self, value: Any) -> None:
        """Send one value in this connection's serialization; raises ConnectionClosed when not open."""
        channel = self._channel
        if channel is None or not self.open:
            raise ConnectionClosed(f"connection {self.connection_id} to {self.peer} is not open")
        for message in self.codec.encode(value):
            channel.send(message)

    async def recv(self) -> Any:
        """The next value received; raises ConnectionClosed once closed and drained."""
        if not self._inbox.empty():
            return self._inbox.get_nowait()
        getter = asyncio.ensure_future(self._inbox.get())
        closed = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if getter.done():
            return getter.result()
        getter.cancel()
        raise ConnectionClosed(f"connection {self.connection_id} to {self.peer} is closed")

    async def wait_open(self, timeout: float) -> None:
        opened = asyncio.ensure_future(self.opened.wait())
        closed = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({opened, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        closed.cancel()
        if not self.open:
            await self.close(ConnectionClosed(f"connection to {self.peer} did not open within {timeout}s"))
            assert self.failure is not None
            raise self.failure

    async def finish(self, timeout: float = 5.0) -> None:
        """Close once the far side has what we sent: PeerJS's flushed close, a close request after the
        data on the same channel; the far side closes when it reads it (raw cannot carry one)."""
        if self.open and self.serialization != "raw":
            self.send(CLOSE)
            try:
                await asyncio.wait_for(self.closed.wait(), timeout)
            except TimeoutError:
                pass
        await self.close()

    async def close(self, failure: ConnectionClosed | None = None) -> None:
        """Close; `failure` says why when it never opened (kept as `failure`)."""
        if self.closed.is_set():
            return
        self.failure = failure if not self.opened.is_set() else None
        if self.failure is None and not self.opened.is_set():
            self.failure = ConnectionClosed(f"connection to {self.peer} closed before it opened")
        self.closed.set()
        if asyncio.current_task() is not self._task:
            self._task.cancel()
        await self._pc.close()
