"""A PeerJS-compatible peer: registers with the daemon's signaling, makes and answers data connections.

    peer = Peer("ws://127.0.0.1:8080/peerjs", key=TOKEN, peer_id="desk-1")
    await peer.start()
    conn = await peer.connect("strategy-1", serialization="json", reliable=True)
    conn.send({"symbol": "BTC-USD", "side": "buy"})
    incoming = await peer.accept()        # a connection someone made to us

The browser's `new Peer(id, {host, port, path: "/", key: TOKEN})` is the same peer: either side can
be either. `EXPIRE` from the server (our OFFER was not taken up: the peer is gone) fails that peer's
pending `connect` with PeerUnavailable and is kept in `expired`; `LEAVE` closes its connections.
A connection's `subject` is the far peer's token subject as the daemon's signaling vouches for it
(from its OFFER or ANSWER; "" from a server that does not say).
"""

import asyncio
import logging
import urllib.request
from collections import deque
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

from aiortc import RTCConfiguration

from tradsys.p2p.connection import ConnectionClosed, DataConnection, PeerUnavailable
from tradsys.p2p.signaling import Signaling

log = logging.getLogger("tradsys.p2p")

MAX_ACCEPT: Final = 100
"""Incoming connections not yet taken by `accept()`; past it new ones are refused (closed)."""
MAX_CONNECTIONS: Final = 1000
MAX_EXPIRED: Final = 100


class Peer:
    def __init__(self, url: str, key: str, peer_id: str | None = None, *, heartbeat: float = 5.0,
                 config: RTCConfiguration | None = None) -> None:
        """`url` is the daemon's signaling WebSocket (ws://HOST:PORT/peerjs); `key` a TradSys token.
        Without `peer_id` the server gives one (its `/KEY/id`), as the JS client asks it."""
        self.url = url
        self.key = key
        self.id = peer_id or ""
        self.config = config or RTCConfiguration(iceServers=[])
        self.heartbeat = heartbeat
        self.connections: dict[tuple[str, str], DataConnection] = {}
        self.expired: deque[str] = deque(maxlen=MAX_EXPIRED)
        self.signaling: Signaling | None = None
        self._incoming: asyncio.Queue[DataConnection] = asyncio.Queue(MAX_ACCEPT)

    async def start(self, timeout: float = 10.0) -> str:
        """Register with the server; returns our id. Raises SignalingError when refused."""
        if not self.id:
            self.id = await asyncio.to_thread(self._fetch_id)
        self.signaling = Signaling(self.url, self.key, self.id, self._on_message, self.heartbeat)
        await self.signaling.start(timeout)
        return self.id

    def _fetch_id(self) -> str:
        parts = urlsplit(self.url)
        scheme = "https" if parts.scheme == "wss" else "http"
        url = urlunsplit((scheme, parts.netloc, f"/peerjs/{quote(self.key, safe='')}/id", "", ""))
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode().strip()

    async def connect(self, peer: str, *, serialization: str = "binary", reliable: bool = False,
                      label: str | None = None, metadata: Any = None, timeout: float = 15.0) -> DataConnection:
        """Open a data connection to `peer`; raises PeerUnavailable (EXPIRE) or ConnectionClosed."""
        conn = self._new(peer, None, serialization=serialization, reliable=reliable, label=label, metadata=metadata)
        await conn.offer()
        await conn.wait_open(timeout)
        return conn

    async def accept(self) -> DataConnection:
        """The next connection another peer opened to us, once its channel is open."""
        return await self._incoming.get()

    def _new(self, peer: str, connection_id: str | None, **options: Any) -> DataConnection:
        self._prune()
        if len(self.connections) >= MAX_CONNECTIONS:
            raise ConnectionClosed(f"{MAX_CONNECTIONS} connections are open: close some first")
        assert self.signaling is not None, "start() the peer first"
        conn = DataConnection(peer, self.signaling.send, connection_id=connection_id, config=self.config, **options)
        self.connections[(peer, conn.connection_id)] = conn
        return conn

    def _prune(self) -> None:
        for key in [key for key, conn in self.connections.items() if conn.closed.is_set()]:
            del self.connections[key]

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind, src = message.get("type"), message.get("src")
        payload = message.get("payload")
        if not isinstance(src, str):
            return
        if kind == "EXPIRE":
            self.expired.append(src)
            log.info("p2p.peer_unavailable id=%s peer=%s", self.id, src)
            for (peer, _), conn in list(self.connections.items()):
                if peer == src and not conn.open:
                    await conn.close(PeerUnavailable(src))
            return
        if kind == "LEAVE":
            for (peer, _), conn in list(self.connections.items()):
                if peer == src:
                    await conn.close()
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("connectionId"), str):
            return
        conn = self.connections.get((src, payload["connectionId"]))
        if kind == "OFFER" and conn is None:
            if payload.get("type") != "data":
                return  # media calls are not ours to answer
            try:
                conn = self._new(src, payload["connectionId"], serialization=str(payload.get("serialization", "binary")),
                                 reliable=bool(payload.get("reliable")), label=payload.get("label"),
                                 metadata=payload.get("metadata"))
            except (ConnectionClosed, ValueError) as exc:
                log.warning("p2p.offer_refused id=%s peer=%s error=%r", self.id, src, exc)
                return
            asyncio.ensure_future(self._deliver(conn))
        if conn is not None:
            if kind in ("OFFER", "ANSWER"):
                subject = message.get("subject")
                conn.subject = subject if isinstance(subject, str) else ""
            conn.handle(message)

    async def _deliver(self, conn: DataConnection) -> None:
        try:
            await conn.wait_open(30.0)
        except ConnectionClosed:
            return
        try:
            self._incoming.put_nowait(conn)
        except asyncio.QueueFull:
            await conn.close()

    async def close(self) -> None:
        for conn in list(self.connections.values()):
            await conn.close()
        self.connections.clear()
        if self.signaling is not None:
            await self.signaling.close()

    async def __aenter__(self) -> "Peer":
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


def signaling_url(http: str) -> str:
    """The signaling WebSocket of a daemon whose HTTP port is `http` (HOST:PORT or a URL)."""
    if "://" not in http:
        http = f"http://{http}"
    parts = urlsplit(http)
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return urlunsplit((scheme, parts.netloc, "/peerjs", "", ""))
