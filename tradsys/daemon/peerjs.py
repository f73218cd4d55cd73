"""PeerJS signaling: the daemon as the rendezvous server of the public `peerjs` browser client.

Strategies and traders exchange trading signals peer to peer over WebRTC; all they need from us is
to relay the session setup. This follows the reference server (the `peer` npm package) on the wire,
so an unmodified client works with `{host, port, path: "/", key: "peerjs"}`:

- WebSocket `/peerjs?key=KEY&id=ID&token=TOKEN` (also `/peerjs/ws`): `OPEN` once registered;
  `ERROR` and close for missing parameters, a wrong key or the concurrent-peer limit; `ID-TAKEN`
  when the id is held under another token (the same token re-attaches, as after a reconnect).
- `OFFER`, `ANSWER`, `CANDIDATE` and `LEAVE` go to `dst` with `src` set by us (never trusted from
  the sender). Messages for an absent peer wait in a queue delivered when it connects; unread past
  `expire_timeout` they are dropped and the sender gets one `EXPIRE` per destination.
  Any message, `HEARTBEAT` included, keeps a peer alive; one silent past `alive_timeout` is dropped.
- HTTP `GET /peerjs/id` (a fresh id), `/peerjs/peers` (only with `allow_discovery`, else 401),
  `/peerjs/stats` (JSON counters).

The PeerJS `token` is the client's own random string that ties an id to its holder, not a TradSys JWT.
Everything runs on the HTTP server's event loop thread, so the registry needs no locks.
"""

import asyncio
import json
import logging
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tradsys.daemon.config import ConfigError
from tradsys.daemon.logs import log_event

log = logging.getLogger("tradsys.peerjs")

RELAYED = frozenset({"OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"})
INVALID_WS_PARAMETERS = "No id, token, or key supplied to websocket server"
INVALID_KEY = "Invalid key provided"
CONNECTION_LIMIT_EXCEED = "Server has reached its concurrent user limit"
PATHS = ("/peerjs", "/peerjs/ws", "/peerjs/peerjs")
"""WebSocket paths: the client's default with path "/", the TradSys design's, and the client's with path "/peerjs"."""


@dataclass(frozen=True)
class PeerConfig:
    """Defaults of the reference server; `[peerjs]` in config.toml overrides any of them."""

    key: str = "peerjs"
    expire_timeout: float = 5.0
    """Seconds a queued message waits for its destination before EXPIRE goes back to its sender."""
    alive_timeout: float = 60.0
    """Seconds without any message (the client heartbeats every 5 s) before a peer is dropped."""
    cleanup_interval: float = 1.0
    concurrent_limit: int = 5000
    allow_discovery: bool = False
    queue_limit: int = 1000
    """Messages waiting for one absent peer, or unsent to one slow peer; beyond it they are dropped."""
    max_message: int = 256 * 1024

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> "PeerConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise ConfigError(f"unknown key(s) in [peerjs]: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            default = getattr(cls, name)
            if isinstance(default, bool) or isinstance(default, str):
                if type(value) is not type(default):
                    raise ConfigError(f"[peerjs] {name} must be a {type(default).__name__}, got {value!r}")
                values[name] = value
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise ConfigError(f"[peerjs] {name} must be a positive number, got {value!r}")
                values[name] = type(default)(value)
        return cls(**values)


@dataclass(eq=False)
class _Peer:
    id: str
    token: str
    ws: ServerConnection | None = None
    last_seen: float = field(default_factory=time.monotonic)
    outbox: deque[str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Waiting:
    """Messages for a peer that is not connected."""

    messages: deque[dict[str, Any]] = field(default_factory=deque)
    last_read: float = field(default_factory=time.monotonic)


class PeerServer:
    def __init__(self, config: PeerConfig | None = None, metrics: Any = None) -> None:
        self.config = config or PeerConfig()
        self.metrics = metrics
        self.peers: dict[str, _Peer] = {}
        self.waiting: dict[str, _Waiting] = {}
        self.relayed: Counter[str] = Counter()
        self.expired = 0
        self.dropped = 0
        self.refused: Counter[str] = Counter()
        self._janitor: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, raw: dict[str, Any], metrics: Any = None) -> "PeerServer":
        return cls(PeerConfig.from_config(raw), metrics)

    def mount(self, http: Any) -> None:
        """Register the WebSocket paths and HTTP routes on an `HttpServer`."""
        for path in PATHS:
            http.sessions[path] = self.session
        http.routes["/peerjs/id"] = self._route_id
        http.routes["/peerjs/peers"] = self._route_peers
        http.routes["/peerjs/stats"] = self._route_stats

    # -- HTTP -----------------------------------------------------------------------------

    def new_id(self) -> str:
        while True:
            candidate = str(uuid.uuid4())
            if candidate not in self.peers and candidate not in self.waiting:
                return candidate

    def _route_id(self, _request: Any) -> tuple[int, str, bytes]:
        return 200, "text/html; charset=utf-8", self.new_id().encode()

    def _route_peers(self, _request: Any) -> tuple[int, str, bytes]:
        if not self.config.allow_discovery:
            return 401, "text/plain; charset=utf-8", b"Unauthorized"
        return 200, "application/json", json.dumps(sorted(self.peers)).encode()

    def stats(self) -> dict[str, Any]:
        return {
            "peers": len(self.peers),
            "queued_messages": sum(len(w.messages) for w in self.waiting.values()),
            "relayed": dict(self.relayed),
            "relayed_total": sum(self.relayed.values()),
            "expired": self.expired,
            "dropped": self.dropped,
            "refused": dict(self.refused),
        }

    def _route_stats(self, _request: Any) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(self.stats()).encode()

    # -- WebSocket ------------------------------------------------------------------------

    async def session(self, ws: ServerConnection) -> None:
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.create_task(self._clean_up())
        ws.protocol.max_message_size = self.config.max_message
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        pid, token, key = ((query.get(name) or [""])[0] for name in ("id", "token", "key"))
        if not pid or not token or not key:
            return await self._refuse(ws, "ERROR", INVALID_WS_PARAMETERS, "parameters")
        if key != self.config.key:
            return await self._refuse(ws, "ERROR", INVALID_KEY, "key")
        peer = self.peers.get(pid)
        if peer is not None and peer.token != token:
            return await self._refuse(ws, "ID-TAKEN", "ID is taken", "id_taken")
        if peer is None:
            if len(self.peers) >= self.config.concurrent_limit:
                return await self._refuse(ws, "ERROR", CONNECTION_LIMIT_EXCEED, "limit")
            peer = self.peers[pid] = _Peer(pid, token)
            self._count_peers()
            peer.outbox.append(json.dumps({"type": "OPEN"}))
        elif peer.ws is not None and peer.ws is not ws:
            old = peer.ws
            asyncio.ensure_future(old.close(1000, "re-attached elsewhere"))
        peer.ws = ws
        peer.last_seen = time.monotonic()
        peer.wake.set()
        writer = asyncio.create_task(self._writer(peer, ws))
        waiting = self.waiting.pop(pid, None)
        if waiting is not None:
            for message in waiting.messages:
                self._transmit(message)
        try:
            async for frame in ws:
                peer.last_seen = time.monotonic()
                try:
                    message = json.loads(frame)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                message["src"] = pid
                kind = message.get("type")
                if kind in RELAYED:
                    self._transmit(message)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            if self.peers.get(pid) is peer and peer.ws is ws:
                del self.peers[pid]
                self._count_peers()

    async def _refuse(self, ws: ServerConnection, kind: str, msg: str, why: str) -> None:
        self.refused[why] += 1
        try:
            await ws.send(json.dumps({"type": kind, "payload": {"msg": msg}}))
            await ws.close()
        except ConnectionClosed:
            pass

    async def _writer(self, peer: _Peer, ws: ServerConnection) -> None:
        """Sends a peer's messages in order, so a slow peer delays no one else."""
        try:
            while True:
                await peer.wake.wait()
                peer.wake.clear()
                if peer.ws is not ws:
                    return
                while peer.outbox:
                    await ws.send(peer.outbox.popleft())
        except (ConnectionClosed, asyncio.CancelledError):
            return

    def _transmit(self, message: dict[str, Any]) -> None:
        kind, src, dst = message.get("type"), message.get("src"), message.get("dst")
        if not isinstance(dst, str) or not dst:
            if kind == "LEAVE" and isinstance(src, str):
                self._drop(src)
            return
        peer = self.peers.get(dst)
        if peer is not None and peer.ws is not None:
            if len(peer.outbox) >= self.config.queue_limit:
                self.dropped += 1
                return
            peer.outbox.append(json.dumps(message))
            peer.wake.set()
            self.relayed[str(kind)] += 1
            return
        if kind in ("LEAVE", "EXPIRE"):
            return  # nothing to tell a peer that is not there
        waiting = self.waiting.get(dst)
        if waiting is None:
            waiting = self.waiting[dst] = _Waiting()
        if len(waiting.messages) >= self.config.queue_limit:
            self.dropped += 1
            return
        waiting.messages.append(message)

    def _drop(self, pid: str) -> None:
        peer = self.peers.pop(pid, None)
        self.waiting.pop(pid, None)
        if peer is not None:
            self._count_peers()
            if peer.ws is not None:
                asyncio.ensure_future(peer.ws.close(1000, "left"))

    async def _clean_up(self) -> None:
        """Expire undelivered messages (EXPIRE to their senders) and drop peers gone silent."""
        config = self.config
        while True:
            await asyncio.sleep(config.cleanup_interval)
            try:
                now = time.monotonic()
                for dst, waiting in list(self.waiting.items()):
                    if now - waiting.last_read < config.expire_timeout:
                        continue
                    told: set[str] = set()
                    for message in waiting.messages:
                        src = message.get("src")
                        if isinstance(src, str) and src not in told:
                            told.add(src)
                            self.expired += 1
                            self._transmit({"type": "EXPIRE", "src": dst, "dst": src})
                    del self.waiting[dst]
                for pid, peer in list(self.peers.items()):
                    if now - peer.last_seen >= config.alive_timeout:
                        log_event(log, logging.INFO, "peerjs.peer_timed_out", id=pid)
                        self._drop(pid)
            except Exception:
                log.exception("peerjs.cleanup_failed")

    def _count_peers(self) -> None:
        if self.metrics is not None:
            self.metrics.peerjs_peers.set(len(self.peers))
