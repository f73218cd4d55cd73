"""PeerJS signaling: the daemon as the rendezvous server of the public `peerjs` browser client.

Strategies and traders exchange trading signals peer to peer over WebRTC; all they need from us is
to relay the session setup. This follows the reference server (the `peer` npm package) on the wire,
so an unmodified client works with `{host, port, path: "/", key: TOKEN}`:

- Access: the PeerJS `key` is a TradSys JWT (any role), checked like every other API's token; the
  client sends it as `?key=` on the WebSocket and as the first path segment of its HTTP calls
  (`/TOKEN/id`). Other HTTP clients may send `Authorization: Bearer TOKEN` instead (to
  `/peerjs/stats`, say). Only `[peerjs] open = true` lets peers in with the plain key (`peerjs`).
- WebSocket `/peerjs?key=KEY&id=ID&token=TOKEN` (also `/peerjs/ws`): `OPEN` once registered;
  `ERROR` and close for missing parameters, a refused key (close code 4001, also when the token
  expires) or the concurrent-peer limit; `ID-TAKEN` when the id is held under another token (the
  same token re-attaches, as after a reconnect).
- `OFFER`, `ANSWER`, `CANDIDATE` and `LEAVE` go to `dst` with `src` set by us (never trusted from
  the sender), and `subject`: the subject of the token the sender registered with (absent for the
  public key of an open server), so that a peer knows who a connection comes from, as this daemon
  vouches for it (the JS client ignores the field). Messages for an absent peer wait in a queue
  delivered when it connects; unread past `expire_timeout` they are dropped and the sender gets one
  `EXPIRE` per destination. A message that would pass a bound (`peerjs_queues`) is dropped, counted
  by the bound's name, and its sender gets `EXPIRE` for that destination, as if it had timed out.
  Any message, `HEARTBEAT` included, keeps a peer alive; one silent past `alive_timeout` is dropped.
- HTTP `GET /KEY/id` (a fresh id), `/KEY/peers` (only with `allow_discovery`, else 401),
  `/KEY/stats` (JSON counters), also under `/peerjs/` (the client's `path: "/peerjs"`).

The PeerJS `token` is the client's own random string that ties an id to its holder, not a TradSys JWT.
Everything runs on the HTTP server's event loop thread, so the registry needs no locks.
"""

import asyncio
import json
import logging
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from tradsys.daemon.auth import AuthError, Principal, parse_bearer, verify_token
from tradsys.daemon.config import section
from tradsys.daemon.logs import log_event
from tradsys.daemon.peerjs_queues import Budget, Held, Limits, Queue
from tradsys.daemon.ws import CLOSE_UNAUTHORIZED

log = logging.getLogger("tradsys.peerjs")

RELAYED = frozenset({"OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"})
UNTOLD = frozenset({"LEAVE", "EXPIRE"})
"""Kinds not kept for an absent peer, and whose loss nobody is told about."""
INVALID_WS_PARAMETERS = "No id, token, or key supplied to websocket server"
INVALID_KEY = "Invalid key provided"
CONNECTION_LIMIT_EXCEED = "Server has reached its concurrent user limit"
PATHS = ("/peerjs", "/peerjs/ws", "/peerjs/peerjs")
"""WebSocket paths: the client's default with path "/", the TradSys design's, and the client's with path "/peerjs"."""
HTTP_PATH = re.compile(r"(?:/peerjs)?/(?P<key>[^/]+)/(?P<method>id|peers|stats)")
"""The client's HTTP calls, `{path}{key}/{method}`, with path "/" or "/peerjs"."""
TEXT = "text/plain; charset=utf-8"
CLOSE_WAIT = 2.0
"""Seconds a refused client gets to take its ERROR and the close."""


@dataclass(frozen=True)
class PeerConfig:
    """Defaults of the reference server, plus access control and memory bounds; `[peerjs]` in
    config.toml overrides any of them."""

    key: str = "peerjs"
    """The key that needs no token, when `open`."""
    open: bool = False
    """Public signaling: peers need no TradSys token, only `key`."""
    expire_timeout: float = 5.0
    """Seconds a queued message waits for its destination before EXPIRE goes back to its sender."""
    alive_timeout: float = 60.0
    """Seconds without any message (the client heartbeats every 5 s) before a peer is dropped."""
    cleanup_interval: float = 1.0
    concurrent_limit: int = 500
    """Connected peers: each holds a connection and, while it floods, a socket read's worth of frames."""
    allow_discovery: bool = False
    max_message: int = 64 * 1024
    """Bytes per WebSocket message (larger: closed with 1009). An SDP offer is a few KiB."""
    queue_limit: int = 1000
    """Messages held for one peer: waiting for an absent one, or unsent to a slow one."""
    queue_bytes: int = 1024 * 1024
    """Bytes held for one peer."""
    peer_bytes: int = 4 * 1024 * 1024
    """Bytes held from one sender, for all its destinations."""
    waiting_limit: int = 1000
    """Absent peers with messages waiting for them."""
    total_bytes: int = 32 * 1024 * 1024
    """Bytes held for all peers; once reached, every message is dropped until held ones leave."""

    def limits(self) -> Limits:
        return Limits(self.queue_limit, self.queue_bytes, self.peer_bytes, self.total_bytes)


@dataclass(eq=False)
class _Peer:
    id: str
    token: str
    outbox: Queue
    ws: ServerConnection | None = None
    last_seen: float = field(default_factory=time.monotonic)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Waiting:
    """Messages for a peer that is not connected."""

    queue: Queue
    since: float = field(default_factory=time.monotonic)


class PeerServer:
    def __init__(self, config: PeerConfig, secret: bytes, metrics: Any = None) -> None:
        self.config = config
        self.secret = secret
        self.metrics = metrics
        self.budget = Budget(config.limits())
        self.peers: dict[str, _Peer] = {}
        self.waiting: dict[str, _Waiting] = {}
        self.relayed: Counter[str] = Counter()
        self.expired = 0
        self.dropped: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._janitor: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, raw: dict[str, Any], secret: bytes, metrics: Any = None) -> "PeerServer":
        return cls(section(PeerConfig, "peerjs", raw), secret, metrics)

    def mount(self, http: Any) -> None:
        """Register the WebSocket paths and HTTP routes on an `HttpServer`."""
        for path in PATHS:
            http.sessions[path] = self.session
            http.uncompressed.add(path)
        http.patterns.append((HTTP_PATH, self._route))
        if self.metrics is not None:
            self.metrics.peerjs_held_bytes.set_function(lambda: self.budget.total)
        if self.config.open:
            log_event(log, logging.WARNING, "peerjs.open", key=self.config.key,
                      advice="anyone who can reach the port may signal through the daemon")

    def authenticate(self, key: str, authorization: str | None) -> Principal | None:
        """Who a request speaks for: its bearer token, else its key as a token; None for the public
        key of an open server. Raises AuthError."""
        if authorization is not None:
            return verify_token(self.secret, parse_bearer(authorization))
        if key != self.config.key:
            return verify_token(self.secret, key)
        if self.config.open:
            return None
        raise AuthError("missing", "a TradSys token is required: pass it as the PeerJS key")

    def _unauthenticated(self, exc: AuthError) -> None:
        self.refused["unauthenticated"] += 1
        if self.metrics is not None:
            self.metrics.auth_refusals.labels("unauthenticated", exc.code).inc()

    # -- HTTP -----------------------------------------------------------------------------

    def new_id(self) -> str:
        while True:
            candidate = str(uuid.uuid4())
            if candidate not in self.peers and candidate not in self.waiting:
                return candidate

    def _route(self, request: Request) -> tuple[int, str, bytes]:
        match = HTTP_PATH.fullmatch(urlsplit(request.path).path)
        assert match is not None, "mounted for HTTP_PATH only"
        try:
            self.authenticate(match["key"], request.headers.get("Authorization"))
        except AuthError as exc:
            self._unauthenticated(exc)
            return 401, TEXT, f"unauthenticated: {exc.code}: {exc.message}\n".encode()
        method = match["method"]
        if method == "id":
            return 200, "text/html; charset=utf-8", self.new_id().encode()
        if method == "peers":
            if not self.config.allow_discovery:
                return 401, TEXT, b"peer discovery is off: set [peerjs] allow_discovery = true\n"
            return 200, "application/json", json.dumps(sorted(self.peers)).encode()
        return 200, "application/json", json.dumps(self.stats()).encode()

    def stats(self) -> dict[str, Any]:
        return {
            "peers": len(self.peers),
            "waiting_peers": len(self.waiting),
            "queued_messages": sum(len(w.queue.entries) for w in self.waiting.values()),
            "held_bytes": self.budget.total,
            "relayed": dict(self.relayed),
            "relayed_total": sum(self.relayed.values()),
            "expired": self.expired,
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "refused": dict(self.refused),
        }

    # -- WebSocket ------------------------------------------------------------------------

    async def session(self, ws: ServerConnection) -> None:
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.create_task(self._clean_up())
        ws.protocol.max_message_size = self.config.max_message
        request = ws.request
        query = parse_qs(urlsplit(request.path if request else "").query)
        pid, token, key = ((query.get(name) or [""])[0] for name in ("id", "token", "key"))
        if not pid or not token or not key:
            return await self._refuse(ws, "ERROR", INVALID_WS_PARAMETERS, "parameters")
        try:
            principal = self.authenticate(key, request.headers.get("Authorization") if request else None)
        except AuthError as exc:
            self._unauthenticated(exc)
            return await self._refuse(ws, "ERROR", f"{INVALID_KEY}: {exc.code}: {exc.message}", None,
                                      CLOSE_UNAUTHORIZED)
        peer = self.peers.get(pid)
        if peer is not None and peer.token != token:
            return await self._refuse(ws, "ID-TAKEN", "ID is taken", "id_taken")
        if peer is None:
            if len(self.peers) >= self.config.concurrent_limit:
                return await self._refuse(ws, "ERROR", CONNECTION_LIMIT_EXCEED, "limit")
            waiting = self.waiting.pop(pid, None)
            peer = self.peers[pid] = _Peer(pid, token, waiting.queue if waiting is not None else Queue())
            self._count_peers()
            self.budget.put(peer.outbox, Held(None, "OPEN", json.dumps({"type": "OPEN"})), first=True)
        elif peer.ws is not None and peer.ws is not ws:
            old = peer.ws
            asyncio.ensure_future(old.close(1000, "re-attached elsewhere"))
        peer.ws = ws
        peer.last_seen = time.monotonic()
        peer.wake.set()
        writer = asyncio.create_task(self._writer(peer, ws))
        expiry = self._expiry(ws, principal)
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
                if principal is not None:
                    message["subject"] = principal.subject
                else:
                    message.pop("subject", None)
                if message.get("type") in RELAYED:
                    self._transmit(message)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            if expiry is not None:
                expiry.cancel()
            if self.peers.get(pid) is peer and peer.ws is ws:
                self._drop(pid)

    def _expiry(self, ws: ServerConnection, principal: Principal | None) -> asyncio.TimerHandle | None:
        """Close the session when its token expires, as every API does."""
        if principal is None or principal.expires is None:
            return None
        left = max(0.0, principal.expires.timestamp() - time.time())
        return asyncio.get_running_loop().call_later(
            left, lambda: asyncio.ensure_future(self._refuse(ws, "ERROR", "token expired", "expired",
                                                             CLOSE_UNAUTHORIZED)))

    async def _refuse(self, ws: ServerConnection, kind: str, msg: str, why: str | None, code: int = 1000) -> None:
        """Say why and close; a client that does not read cannot take the close either, so it is cut off."""
        if why is not None:
            self.refused[why] += 1
        try:
            await asyncio.wait_for(ws.send(json.dumps({"type": kind, "payload": {"msg": msg}})), CLOSE_WAIT)
            await asyncio.wait_for(ws.close(code, msg[:120]), CLOSE_WAIT)
        except TimeoutError:
            ws.transport.abort()
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
                while peer.outbox.entries:
                    held = self.budget.take(peer.outbox)
                    await ws.send(held.text)
                    if held.kind in RELAYED:
                        self.relayed[held.kind] += 1
        except (ConnectionClosed, asyncio.CancelledError):
            return

    def _transmit(self, message: dict[str, Any]) -> None:
        kind, src, dst = message.get("type"), message.get("src"), message.get("dst")
        if not isinstance(dst, str) or not dst:
            if kind == "LEAVE" and isinstance(src, str):
                self._drop(src)
            return
        self._hold(dst, Held(src if isinstance(src, str) else None, str(kind), json.dumps(message)))

    def _hold(self, dst: str, held: Held) -> None:
        """Queue `held` for `dst`, or drop it at the first bound it would pass and tell its sender."""
        peer = self.peers.get(dst)
        if peer is None and held.kind in UNTOLD:
            return  # nothing to tell a peer that is not there
        waiting = self.waiting.get(dst) if peer is None else None
        if peer is None and waiting is None and len(self.waiting) >= self.config.waiting_limit:
            return self._refused(dst, held, "waiting_limit")
        queue = peer.outbox if peer is not None else waiting.queue if waiting is not None else Queue()
        reason = self.budget.refusal(queue, held)
        if reason is not None:
            return self._refused(dst, held, reason)
        self.budget.put(queue, held)
        if peer is not None:
            peer.wake.set()
        elif waiting is None:
            self.waiting[dst] = _Waiting(queue)

    def _refused(self, dst: str, held: Held, reason: str) -> None:
        self.dropped[reason] += 1
        if self.metrics is not None:
            self.metrics.peerjs_dropped.labels(reason).inc()
        if held.src is not None and held.kind not in UNTOLD:
            self._expire(dst, held.src)

    def _expire(self, dst: str, src: str) -> None:
        """Tell `src` that `dst` will not get its messages."""
        self._hold(src, Held(None, "EXPIRE", json.dumps({"type": "EXPIRE", "src": dst, "dst": src})))

    def _drop(self, pid: str) -> None:
        """Forget a connected peer and what is held for it (an absent one has nothing to forget)."""
        peer = self.peers.pop(pid, None)
        if peer is not None:
            self.budget.empty(peer.outbox)
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
                    if now - waiting.since < config.expire_timeout:
                        continue
                    del self.waiting[dst]
                    senders = {held.src for held in self.budget.empty(waiting.queue) if held.src is not None}
                    for src in sorted(senders):
                        self.expired += 1
                        self._expire(dst, src)
                for pid, peer in list(self.peers.items()):
                    if now - peer.last_seen >= config.alive_timeout:
                        log_event(log, logging.INFO, "peerjs.peer_timed_out", id=pid)
                        self._drop(pid)
            except Exception:
                log.exception("peerjs.cleanup_failed")

    def _count_peers(self) -> None:
        if self.metrics is not None:
            self.metrics.peerjs_peers.set(len(self.peers))
