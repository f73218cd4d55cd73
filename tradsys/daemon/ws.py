"""WebSocket streaming: `/ws` (JSON text frames) and `/ws/v2` (binary `ws.proto` envelopes).

One protocol, two codecs (`ws_codecs`). Each connection is a `Session`: a reader (requests, in
order; trading requests go through order entry, `entry`, concurrently and reply by id) and a
writer fed by one bounded `LoopInbox` that all its channels (`ws_channels`) share. The engine
thread only appends to that inbox; when it is full, book deltas are conflated into a fresh
snapshot, and a client that still cannot keep up is closed with `CLOSE_SLOW`. The bounds are
`ws_limits.WsLimits`.
"""

import asyncio
import logging
import socket
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tradsys.daemon.auth import AuthError, Principal, verify_token
from tradsys.daemon.core import Core, Overloaded, Unavailable
from tradsys.daemon.entry import Refused, execute_async
from tradsys.daemon.feeds import Feeds
from tradsys.daemon.hub import LAGGING, Hub, LoopInbox
from tradsys.daemon.logs import log_event
from tradsys.daemon.ws_channels import Channels, Routes, conflate
from tradsys.daemon.ws_codecs import JSON, PROTO, Codec, Request, WsError
from tradsys.daemon.ws_limits import RequestRate, WsLimits

log = logging.getLogger("tradsys.ws")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_UNAUTHORIZED = 4001
CLOSE_TRY_AGAIN = 1013
CLOSE_SLOW = 4008
CLOSE_FLOOD = 4029


class WsServer:
    """The daemon's WebSocket front: the connection bound, and what its sessions share. Sessions
    are `json_session` (`/ws`) and `proto_session` (`/ws/v2`)."""

    def __init__(self, core: Core, feeds: Feeds, hub: Hub, store: Any, secret: bytes, metrics: Any = None,
                 limits: WsLimits | None = None) -> None:
        self.core = core
        self.hub = hub
        self.store = store
        self.secret = secret
        self.metrics = metrics
        self.limits = limits or WsLimits()
        self.routes = Routes(core, feeds)
        self.connections = 0
        """Open sessions; changed on the event loop only."""

    async def json_session(self, ws: ServerConnection) -> None:
        await self._session(ws, JSON)

    async def proto_session(self, ws: ServerConnection) -> None:
        await self._session(ws, PROTO)

    async def _session(self, ws: ServerConnection, codec: Codec) -> None:
        if self.connections >= self.limits.max_connections:
            self.count("ws_refusals", "connection_limit")
            await ws.close(CLOSE_TRY_AGAIN, f"{self.connections} connections open, the daemon's limit ([ws] max_connections)")
            return
        self.connections += 1
        try:
            await Session(self, ws, codec).run()
        finally:
            self.connections -= 1

    def count(self, metric: str, label: str) -> None:
        if self.metrics is not None:
            getattr(self.metrics, metric).labels(label).inc()


class Session:
    """One connection: authentication, requests and their replies, and the pushes of its channels."""

    def __init__(self, server: WsServer, ws: ServerConnection, codec: Codec) -> None:
        self.server = server
        self.ws = ws
        self.codec = codec
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.principal: Principal | None = None
        self.ready = asyncio.Event()
        self.replies: list[Any] = []
        self.inbox = LoopInbox(self.loop, self.ready.set, self.limits.queue, self._conflate)
        self.channels = Channels(server.routes, server.hub, self.inbox, self.limits.max_channels)
        self.rate = RequestRate(self.limits.rate, self.limits.burst)
        self.inflight = 0
        self.closing = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: list[asyncio.TimerHandle] = []

    def _conflate(self, items: deque[tuple[str, Any]]) -> bool:
        done = conflate(items)
        if done:
            self.server.count("ws_slow_clients", "conflated")
        return done

    # -- life cycle -----------------------------------------------------------------------

    async def run(self) -> None:
        ws, limits = self.ws, self.limits
        ws.ping_interval, ws.ping_timeout, ws.close_timeout = limits.ping_interval, limits.ping_timeout, 2.0
        ws.protocol.max_message_size = limits.max_frame
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.send_buffer)
        ws.transport.set_write_buffer_limits(high=limits.send_buffer)
        metrics = self.server.metrics
        if metrics is not None:
            metrics.ws_connections.labels(self.codec.name).inc()
        writer = asyncio.create_task(self._writer())
        try:
            query = parse_qs(urlsplit(ws.request.path).query) if ws.request else {}
            token = (query.get("token") or [None])[0]
            if token is not None:
                if not self._authenticate(None, token):
                    await self._close(CLOSE_UNAUTHORIZED, "unauthenticated")
                    return
            else:
                self.timers.append(self.loop.call_later(limits.auth_timeout, self._auth_timeout))
            async for frame in ws:
                if not self._admit():
                    if self.closing:
                        await self._close(CLOSE_FLOOD, "flood: too many requests")
                        break
                    continue
                try:
                    req = self.codec.decode(frame)
                except WsError as exc:
                    self.server.count("ws_refusals", "unsupported" if exc.code == "unsupported" else "malformed")
                    self._error(exc.request_id, exc)
                    continue
                await self._handle(req)
                if self.closing:
                    break
        except ConnectionClosed:
            pass
        finally:
            self.closing = True
            for timer in self.timers:
                timer.cancel()
            self.channels.detach()
            for task in list(self.tasks):
                task.cancel()
            writer.cancel()
            if metrics is not None:
                metrics.ws_connections.labels(self.codec.name).dec()

    def _admit(self) -> bool:
        """Refuse over-limit requests with an error, and close a connection that keeps on."""
        rate = self.rate
        if rate.admit():
            return True
        self.server.count("ws_refusals", "rate_limited")
        if rate.over_limit >= self.limits.flood_close:
            self.server.count("ws_refusals", "flood")
            self.closing = True
        elif rate.over_limit <= rate.burst:  # don't let a flood make us write as fast as it reads
            self._error(None, WsError("rate_limited", f"over {rate.rate:g} requests/s; request dropped"))
        return False

    def _auth_timeout(self) -> None:
        if self.principal is None and not self.closing:
            asyncio.ensure_future(self._close(CLOSE_UNAUTHORIZED, "unauthenticated: no auth within the time allowed"))

    def _authenticate(self, rid: Any, token: str) -> bool:
        try:
            principal = verify_token(self.server.secret, token)
        except AuthError as exc:
            self.server.count("ws_refusals", "unauthenticated")
            self._error(rid, WsError("unauthenticated", f"{exc.code}: {exc.message}"))
            return False
        if self.principal is not None and principal.subject != self.principal.subject:
            self._error(rid, WsError("permission_denied", "already authenticated as another subject"))
            return True
        self.principal = principal
        if principal.expires is not None:
            left = principal.expires.timestamp() - time.time()
            self.timers.append(self.loop.call_later(max(0.0, left), self._expired))
        if rid is not None:  # an auth request, not ?token=
            self._reply(rid, "auth", {
                "subject": principal.subject, "role": principal.role.value, "accounts": list(principal.accounts),
                "expires_ns": int(principal.expires.timestamp() * 1e9) if principal.expires else 0,
            })
        return True

    def _expired(self) -> None:
        asyncio.ensure_future(self._close(CLOSE_UNAUTHORIZED, "token expired"))

    async def _close(self, code: int, reason: str) -> None:
        """Send what replies are pending (an error saying why, typically), then close."""
        self.closing = True
        self.channels.detach()
        replies, self.replies = self.replies, []
        try:
            for frame in replies:
                await asyncio.wait_for(self.ws.send(frame), 1.0)
            await asyncio.wait_for(self.ws.close(code, reason[:120]), 3.0)
        except TimeoutError:  # a client that does not read cannot take a close frame either
            self.ws.transport.abort()
        except Exception:  # already gone
            pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- requests -------------------------------------------------------------------------

    def _reply(self, rid: Any, kind: str, result: dict[str, Any]) -> None:
        self.replies.append(self.codec.reply(rid, kind, result))
        self.ready.set()

    def _error(self, rid: Any, refused: Refused) -> None:
        self.replies.append(self.codec.error(rid, refused))
        self.ready.set()

    async def _handle(self, req: Request) -> None:
        kind, body = req.kind, req.body
        if kind == "pong":
            return
        if kind == "ping":
            self._reply(req.id, "pong", {"ts_ns": body.ts_ns, "responder_ts_ns": time.time_ns()})
            return
        if kind == "auth":
            if not self._authenticate(req.id, body.token) and self.principal is None:
                await self._close(CLOSE_UNAUTHORIZED, "unauthenticated")
            return
        if self.principal is None:
            self._error(req.id, WsError("unauthenticated", "authenticate first: send an auth request or ?token="))
            return
        try:
            if kind == "subscribe":
                self._reply(req.id, kind, {"channels": self.channels.subscribe(list(body.channels), self.principal)})
            elif kind == "unsubscribe":
                self._reply(req.id, kind, {"channels": self.channels.unsubscribe(list(body.channels))})
            elif self.inflight >= self.limits.max_inflight:
                raise WsError("rate_limited", f"{self.inflight} trading requests already in flight")
            else:
                self.inflight += 1
                self._spawn(self._trade(req))
        except WsError as exc:
            self._error(req.id, exc)

    async def _trade(self, req: Request) -> None:
        """An order-entry request, through the order-entry path every transport shares."""
        server, principal = self.server, self.principal
        assert principal is not None
        try:
            self._reply(req.id, req.kind,
                        await execute_async(server.core, principal, req.kind, req.body, server.store.get_order))
        except Refused as refused:
            self._error(req.id, refused)
        except Overloaded as exc:
            self._error(req.id, WsError("rate_limited", str(exc)))
        except Unavailable as exc:
            self._error(req.id, WsError("internal", f"unavailable: {exc}"))
        except TimeoutError:
            self._error(req.id, WsError("internal", "the engine did not answer in time"))
        except Exception:
            log.exception("ws.request_failed", extra={"fields": {"type": req.kind}})
            self._error(req.id, WsError("internal", "internal error"))
        finally:
            self.inflight -= 1

    # -- pushes ---------------------------------------------------------------------------

    async def _writer(self) -> None:
        codec, limits = self.codec, self.limits
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                reason = self.inbox.closed_reason
                if reason is not None:
                    await self._flush(self.replies)
                    if reason == LAGGING:
                        self.server.count("ws_slow_clients", "closed")
                        await self._close(CLOSE_SLOW, "slow consumer: too far behind the stream")
                    else:
                        await self._close(CLOSE_GOING_AWAY, reason)
                    return
                replies, self.replies = self.replies, []
                pushes = await self.channels.pushes(self.inbox.drain(), codec.push)
                if not await self._flush(replies) or not await self._flush(codec.frames(pushes, limits.batch)):
                    return
        except (ConnectionClosed, asyncio.CancelledError):
            return
        except Exception:
            log.exception("ws.writer_failed")
            await self._close(1011, "internal error")

    async def _flush(self, frames: list[Any]) -> bool:
        for frame in frames:
            try:
                await asyncio.wait_for(self.ws.send(frame), self.limits.send_timeout)
            except TimeoutError:
                self.server.count("ws_slow_clients", "closed")
                log_event(log, logging.INFO, "ws.slow_client_closed", protocol=self.codec.name)
                await self._close(CLOSE_SLOW, "slow consumer: frames not taken in time")
                return False
        return True
