"""WebSocket streaming: `/ws` (JSON text frames) and `/ws/v2` (binary `ws.proto` envelopes).

One protocol, two codecs. A codec turns a frame into a `Request` (the body is always the gRPC/ws.proto
request message, so JSON and protobuf clients share every check) and replies and pushes into frames.
Each connection has a reader (requests, in order; trading requests run concurrently and reply by id)
and a writer fed by one bounded `LoopInbox` that all its hub subscriptions share. The engine thread
only appends to that inbox; when it is full, book deltas are conflated into a fresh snapshot, and a
client that still cannot keep up is closed with `CLOSE_SLOW`.
"""

import asyncio
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from google.protobuf.message import DecodeError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tradsys.daemon.auth import AuthError, PermissionDenied, Principal, readable, verify_token
from tradsys.daemon.config import ConfigError
from tradsys.daemon.core import Core, Overloaded, Unavailable
from tradsys.daemon.book_feed import MAX_DEPTH, BookView, book_topic
from tradsys.daemon.entry import READS_HISTORY, Refused, answer, command, outcomes
from tradsys.daemon.feeds import Feeds
from tradsys.daemon.hub import LAGGING, Encoded, Hub, LoopInbox, Subscription
from tradsys.daemon.logs import log_event
from tradsys.daemon.rpc.convert import (
    SIDE_CODES,
    TIF_CODES,
    TYPE_CODES,
    bar_msg,
    entry_response,
    levels,
    order_event_msg,
    position_msg,
    trade_msg,
)
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import ws_pb2

log = logging.getLogger("tradsys.ws")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_UNAUTHORIZED = 4001
CLOSE_TRY_AGAIN = 1013
CLOSE_SLOW = 4008
CLOSE_FLOOD = 4029
SNAP = "\0snapshot"
"""Inbox topic of a marker asking the writer for a fresh book snapshot (item: the symbol)."""

REQUESTS = ("auth", "subscribe", "unsubscribe", "place", "cancel", "amend", "cancel_all", "ping", "pong")
TRADING = frozenset({"place", "cancel", "amend", "cancel_all"})
PUSH_KIND = {"book": "book_update", "trades": "trade", "bars": "bar", "orders": "order_event",
             "positions": "position", "alerts": "alert"}


@dataclass(frozen=True)
class WsLimits:
    """Per-connection limits; `[ws]` in config.toml overrides any of them."""

    queue: int = 2000
    """Pending pushes per connection before book deltas are conflated (and, failing that, the client cut off)."""
    send_timeout: float = 10.0
    """A frame the client has not taken in this long closes the connection as too slow."""
    send_buffer: int = 64 * 1024
    """Bytes a connection may have unsent (kernel SO_SNDBUF and our write buffer each): a client that
    stops reading is detected after that much, not after the kernel's autotuned megabytes, and is
    closed (4008) once a frame has waited `send_timeout`."""
    max_connections: int = 1000
    """Open WebSocket connections (both paths together); the next is closed at once with 1013."""
    max_frame: int = 64 * 1024
    """Largest incoming message; bigger ones close the connection with 1009."""
    rate: float = 50.0
    """Requests per second a connection may sustain..."""
    burst: int = 100
    """...with bursts up to this many."""
    flood_close: int = 200
    """Consecutive over-limit requests before the connection is closed as a flood."""
    max_channels: int = 64
    auth_timeout: float = 10.0
    """Seconds a connection may stay unauthenticated."""
    max_inflight: int = 64
    """Trading requests a connection may have waiting on the engine at once."""
    batch: int = 256
    """Most pushes in one /ws/v2 frame."""
    ping_interval: float = 20.0
    ping_timeout: float = 40.0
    """With the interval: a peer silent for about a minute is dropped."""

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> "WsLimits":
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise ConfigError(f"unknown key(s) in [ws]: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
        values = {}
        for name, value in raw.items():
            kind = int if known[name] in (int, "int") else float
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"[ws] {name} must be a positive number, got {value!r}")
            values[name] = kind(value)
        return cls(**values)


class WsError(Exception):
    """A refusal sent back as an error reply: `code` names a common.ErrorCode (lower case, no prefix)."""

    def __init__(self, code: str, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


class Request(NamedTuple):
    id: Any
    kind: str
    body: Any
    """The ws.proto/gRPC request message, whichever codec decoded it."""


# -- codecs ---------------------------------------------------------------------------------------


def _channel(topic: str, item: Any) -> str:
    return f"{topic}:{item['interval']}" if topic.startswith("bars:") else topic


def _book_json(view: BookView) -> dict[str, Any]:
    return {"symbol": view.symbol, "seq": view.seq, "prev_seq": view.prev_seq, "ts": view.ts, "bids": view.bids,
            "asks": view.asks}


def _decimal(value: Any, name: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise WsError("invalid_argument", f"{name} must be a decimal string (floats are not exact)")
    return str(value)


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WsError("invalid_argument", f"{name} must be a string")
    return value


def _int(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WsError("invalid_argument", f"{name} must be a non-negative integer")
    return value


def _enum(table: dict[str, int], value: Any, name: str, normal: Callable[[str], str]) -> int:
    if value is None or value == "":
        return 0
    code = table.get(normal(value)) if isinstance(value, str) else None
    if code is None:
        raise WsError("invalid_argument", f"{name} must be one of {', '.join(table)}")
    return code


class JsonCodec:
    """`/ws`: JSON text frames, `{"type": ..., "id": ..., ...}`; pushes may come several to a frame as a batch."""

    name = "json"

    def __init__(self) -> None:
        self.cache = Encoded()

    def decode(self, frame: str | bytes) -> Request:
        if isinstance(frame, bytes):
            raise WsError("invalid_argument", "send JSON text frames on /ws (binary protobuf is /ws/v2)")
        try:
            msg = json.loads(frame)
        except ValueError as exc:
            raise WsError("invalid_argument", f"malformed JSON: {exc}") from None
        if not isinstance(msg, dict):
            raise WsError("invalid_argument", "a request must be a JSON object")
        rid = msg.get("id")
        if not isinstance(rid, (int, str)) or isinstance(rid, bool):
            rid = None
        kind = msg.get("type")
        try:
            return Request(rid, kind, self._body(kind, msg))
        except WsError as exc:
            exc.request_id = rid  # type: ignore[attr-defined]
            raise

    def _body(self, kind: Any, msg: dict[str, Any]) -> Any:
        if kind == "auth":
            return ws_pb2.AuthRequest(token=_text(msg.get("token"), "token"))
        if kind in ("subscribe", "unsubscribe"):
            channels = msg.get("channels")
            if isinstance(channels, str):
                channels = [channels]
            if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
                raise WsError("invalid_argument", "channels must be a list of channel names")
            cls = ws_pb2.SubscribeRequest if kind == "subscribe" else ws_pb2.UnsubscribeRequest
            return cls(channels=channels)
        if kind == "place":
            o = msg.get("order", msg)
            if not isinstance(o, dict):
                raise WsError("invalid_argument", "order must be an object")
            return pb.PlaceOrderRequest(
                account=_text(o.get("account"), "account"), symbol=_text(o.get("symbol"), "symbol"),
                side=_enum(SIDE_CODES, o.get("side"), "side", str.lower),
                type=_enum(TYPE_CODES, o.get("order_type", o.get("type") if o is not msg else None), "type", str.lower),
                tif=_enum(TIF_CODES, o.get("tif"), "tif", str.upper),
                qty=_decimal(o.get("qty"), "qty"), price=_decimal(o.get("price"), "price"),
                stop_price=_decimal(o.get("stop_price"), "stop_price"), client_id=_text(o.get("client_id"), "client_id"),
                post_only=bool(o.get("post_only")), reduce_only=bool(o.get("reduce_only")),
                expire_ns=_int(o.get("expire_ns"), "expire_ns"),
            )
        if kind == "cancel":
            return pb.CancelOrderRequest(order_id=_text(msg.get("order_id"), "order_id"))
        if kind == "amend":
            return pb.AmendOrderRequest(order_id=_text(msg.get("order_id"), "order_id"),
                                        new_price=_decimal(msg.get("new_price"), "new_price"),
                                        new_open_qty=_decimal(msg.get("new_open_qty"), "new_open_qty"))
        if kind == "cancel_all":
            return pb.CancelAllRequest(account=_text(msg.get("account"), "account"), symbol=_text(msg.get("symbol"), "symbol"))
        if kind == "ping":
            ts = msg.get("ts_ns")
            return ws_pb2.Ping(ts_ns=ts if isinstance(ts, int) and not isinstance(ts, bool) else 0)
        if kind == "pong":
            return ws_pb2.Pong()
        raise WsError("unsupported", f"unknown request type {kind!r}; expected one of {', '.join(REQUESTS)}")

    def reply(self, rid: Any, kind: str, result: dict[str, Any]) -> str:
        if kind == "pong":
            return json.dumps({"type": "pong", "id": rid, **result})
        return json.dumps({"type": "result", "id": rid, "result": result})

    def error(self, rid: Any, exc: WsError) -> str:
        body: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.reason:
            body["reason"] = exc.reason
        return json.dumps({"type": "error", "id": rid, "error": body})

    def push(self, topic: str, item: Any) -> str:
        return self.cache.get(item, lambda it: self._push(topic, it))

    def _push(self, topic: str, item: Any) -> str:
        if isinstance(item, BookView):
            kind = "book_snapshot" if item.snapshot else "book_update"
            return json.dumps({"type": kind, "channel": item.channel, "data": _book_json(item)})
        kind = PUSH_KIND[topic.split(":", 1)[0]]
        return json.dumps({"type": kind, "channel": _channel(topic, item), "data": item})

    def frames(self, pushes: list[str], batch: int) -> list[str]:
        """Single pushes as they are; runs of them (a client behind, a burst) as one
        `{"type": "batch", "items": [...]}` frame: fewer frames to frame, compress and parse."""
        if len(pushes) <= 1:
            return pushes
        return ['{"type": "batch", "items": [' + ", ".join(pushes[i:i + batch]) + "]}"
                for i in range(0, len(pushes), batch)]


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BATCH_TYPE = b"\x12\x05batch"  # Envelope.type = "batch"
_BATCH_TAG = _varint((40 << 3) | 2)  # Envelope.batch
_ITEM_TAG = b"\x0a"  # Batch.items


def _alert_msg(r: dict[str, Any]) -> ws_pb2.Alert:
    def enum(cls: Any, prefix: str, value: Any) -> int:
        try:
            return cls.Value(f"{prefix}{str(value).upper()}")
        except ValueError:
            return 0

    return ws_pb2.Alert(
        id=str(r.get("id", "")), rule=str(r.get("rule", "")),
        severity=enum(ws_pb2.Alert.Severity, "SEVERITY_", r.get("severity")),
        state=enum(ws_pb2.Alert.State, "STATE_", r.get("state")),
        labels={str(k): str(v) for k, v in (r.get("labels") or {}).items()}, summary=str(r.get("summary", "")),
        started_ns=int(r.get("started_ns") or 0), resolved_ns=int(r.get("resolved_ns") or 0),
    )


class ProtoCodec:
    """`/ws/v2`: one `Envelope` per binary frame; several pushes share a frame as a `Batch`."""

    name = "proto"
    ERROR_CODES = {name.removeprefix("ERROR_CODE_").lower(): value for name, value in common.ErrorCode.items()}

    def __init__(self) -> None:
        self.cache = Encoded()

    def decode(self, frame: str | bytes) -> Request:
        if isinstance(frame, str):
            raise WsError("invalid_argument", "send binary ws.proto Envelope frames on /ws/v2 (JSON is /ws)")
        env = ws_pb2.Envelope()
        try:
            env.ParseFromString(frame)
        except DecodeError:
            raise WsError("invalid_argument", "not a ws.proto Envelope") from None
        kind = env.WhichOneof("body")
        if kind not in REQUESTS:
            exc = WsError("unsupported", f"{kind or 'an empty envelope'} is not a request; "
                          f"expected one of {', '.join(REQUESTS)}")
            exc.request_id = env.id  # type: ignore[attr-defined]
            raise exc
        return Request(env.id, kind, getattr(env, kind))

    def reply(self, rid: Any, kind: str, result: dict[str, Any]) -> bytes:
        rid = rid if isinstance(rid, int) else 0
        if kind == "pong":
            return ws_pb2.Envelope(id=rid, type="pong", pong=ws_pb2.Pong(**result)).SerializeToString()
        res = ws_pb2.Result()
        if kind == "auth":
            res.auth.CopyFrom(ws_pb2.AuthResult(subject=result["subject"], accounts=result["accounts"],
                                                 expires_ns=result["expires_ns"]))
        elif kind in ("subscribe", "unsubscribe"):
            res.subscriptions.CopyFrom(ws_pb2.SubscriptionsResult(channels=result["channels"]))
        elif kind in TRADING:
            getattr(res, kind).CopyFrom(entry_response(kind, result))
        return ws_pb2.Envelope(id=rid, type="result", result=res).SerializeToString()

    def error(self, rid: Any, exc: WsError) -> bytes:
        message = f"{exc.reason}: {exc.message}" if exc.reason else exc.message
        err = common.Error(code=self.ERROR_CODES.get(exc.code, common.ERROR_CODE_INTERNAL), message=message)
        return ws_pb2.Envelope(id=rid if isinstance(rid, int) else 0, type="error", error=err).SerializeToString()

    def push(self, topic: str, item: Any) -> bytes:
        return self.cache.get(item, lambda it: self._push(topic, it).SerializeToString())

    def _push(self, topic: str, item: Any) -> ws_pb2.Envelope:
        envelope = self._body(topic, item)
        envelope.channel = item.channel if isinstance(item, BookView) else _channel(topic, item)
        return envelope

    def _body(self, topic: str, item: Any) -> ws_pb2.Envelope:
        if isinstance(item, BookView):
            if item.snapshot:
                msg = md.BookSnapshot(symbol=item.symbol, bids=levels(item.bids), asks=levels(item.asks),
                                      seq=item.seq, ts_ns=item.ts)
                return ws_pb2.Envelope(type="book_snapshot", book_snapshot=msg)
            msg = md.BookUpdate(symbol=item.symbol, bids=levels(item.bids), asks=levels(item.asks),
                                seq=item.seq, ts_ns=item.ts, prev_seq=item.prev_seq)
            return ws_pb2.Envelope(type="book_update", book_update=msg)
        kind = PUSH_KIND[topic.split(":", 1)[0]]
        if kind == "trade":
            return ws_pb2.Envelope(type=kind, trade=trade_msg(item))
        if kind == "bar":
            return ws_pb2.Envelope(type=kind, bar=bar_msg(item))
        if kind == "order_event":
            return ws_pb2.Envelope(type=kind, order_event=order_event_msg(item))
        if kind == "position":
            return ws_pb2.Envelope(type=kind, position=position_msg(item))
        return ws_pb2.Envelope(type=kind, alert=_alert_msg(item))

    def frames(self, pushes: list[bytes], batch: int) -> list[bytes]:
        """Single pushes as they are; runs of them as Batch envelopes, built by concatenation."""
        if len(pushes) <= 1:
            return pushes
        out = []
        for start in range(0, len(pushes), batch):
            chunk = pushes[start:start + batch]
            if len(chunk) == 1:
                out.append(chunk[0])
                continue
            body = b"".join(_ITEM_TAG + _varint(len(p)) + p for p in chunk)
            out.append(_BATCH_TYPE + _BATCH_TAG + _varint(len(body)) + body)
        return out


JSON = JsonCodec()
PROTO = ProtoCodec()


# -- channels -------------------------------------------------------------------------------------


def _conflate(items: deque[tuple[str, Any]]) -> bool:
    """Inbox overflow (engine thread): drop pending book deltas, ask for one snapshot per book channel instead."""
    channels: dict[str, None] = {}
    kept: list[tuple[str, Any]] = []
    for topic, item in items:
        if topic.startswith("book:"):
            channels[topic] = None
        elif topic == SNAP:
            channels[item] = None
        else:
            kept.append((topic, item))
    if len(kept) + len(channels) >= len(items):
        return False
    items.clear()
    items.extend(kept)
    items.extend((SNAP, c) for c in channels)
    return True


class WsServer:
    """The protocol: authentication, channels, order entry. Sessions are `json_session` and `proto_session`."""

    def __init__(self, core: Core, feeds: Feeds, hub: Hub, store: Any, secret: bytes, metrics: Any = None,
                 limits: WsLimits | None = None) -> None:
        self.core = core
        self.feeds = feeds
        self.hub = hub
        self.store = store
        self.secret = secret
        self.metrics = metrics
        self.limits = limits or WsLimits()
        self.symbols = tuple(core.venue.instruments)
        self.connections = 0
        """Open sessions; changed on the event loop only."""

    async def json_session(self, ws: ServerConnection) -> None:
        await self._session(ws, JSON)

    async def proto_session(self, ws: ServerConnection) -> None:
        await self._session(ws, PROTO)

    async def _session(self, ws: ServerConnection, codec: "JsonCodec | ProtoCodec") -> None:
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

    def topic(self, channel: str, principal: Principal) -> tuple[str, Callable[[str, Any], bool] | None]:
        """The hub topic and filter of a channel name, or WsError naming what is valid."""
        kind, _, rest = channel.partition(":")
        if kind == "trades" and rest in self.symbols:
            return channel, None
        if kind == "book":
            symbol, _, depth = rest.partition(":")
            if symbol in self.symbols and (not depth or depth in _DEPTHS):
                return book_topic(symbol, int(depth or 0)), None
        if kind == "bars":
            symbol, _, interval = rest.partition(":")
            if symbol in self.symbols and interval in self.feeds.intervals:
                return f"bars:{symbol}", lambda _topic, bar: bar["interval"] == interval
        if kind in ("orders", "positions") and not rest:
            try:
                mine = readable(principal)
            except PermissionDenied as exc:
                raise WsError("permission_denied", str(exc)) from None
            if mine is None:
                return kind, None
            if kind == "orders":
                return kind, lambda _topic, ev: ev["order"].get("account") in mine
            return kind, lambda _topic, pos: pos.get("account") in mine
        if channel == "alerts":
            return channel, None
        symbols = "|".join(self.symbols)
        raise WsError("not_found", f"unknown channel {channel!r}; channels are book:SYM (whole book), book:SYM:N (top N, "
                      f"1-{MAX_DEPTH}), trades:SYM, "
                      f"bars:SYM:INTERVAL ({', '.join(self.feeds.intervals)}), orders, positions, alerts; "
                      f"SYM is {symbols}")


_DEPTHS = frozenset(str(n) for n in range(1, MAX_DEPTH + 1))
"""The N of `book:SYM:N`, spelled one way only so that a channel is its hub topic."""


@dataclass(slots=True)
class _Book:
    """A book channel of a session: `book:SYM` or `book:SYM:N`."""

    symbol: str
    depth: int
    seq: int | None = None
    """Last seq sent; None until the snapshot is."""


class Session:
    def __init__(self, server: WsServer, ws: ServerConnection, codec: JsonCodec | ProtoCodec) -> None:
        self.server = server
        self.ws = ws
        self.codec = codec
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.principal: Principal | None = None
        self.subs: dict[str, Subscription] = {}
        self.books: dict[str, _Book] = {}
        self.ready = asyncio.Event()
        self.replies: list[Any] = []
        self.inbox = LoopInbox(self.loop, self.ready.set, self.limits.queue, self._conflate)
        self.tokens = float(self.limits.burst)
        self.last_refill = time.monotonic()
        self.over_limit = 0
        self.inflight = 0
        self.closing = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: list[asyncio.TimerHandle] = []

    def _conflate(self, items: deque[tuple[str, Any]]) -> bool:
        done = _conflate(items)
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
                    self._error(getattr(exc, "request_id", None), exc)
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
            for sub in self.subs.values():
                self.server.hub.unsubscribe(sub)
            self.subs.clear()
            for task in list(self.tasks):
                task.cancel()
            writer.cancel()
            if metrics is not None:
                metrics.ws_connections.labels(self.codec.name).dec()

    def _admit(self) -> bool:
        """Token bucket: refuse over-limit requests with an error, and close a connection that keeps on."""
        now = time.monotonic()
        limits = self.limits
        self.tokens = min(float(limits.burst), self.tokens + (now - self.last_refill) * limits.rate)
        self.last_refill = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.over_limit = 0
            return True
        self.over_limit += 1
        self.server.count("ws_refusals", "rate_limited")
        if self.over_limit >= limits.flood_close:
            self.server.count("ws_refusals", "flood")
            self.closing = True
        elif self.over_limit <= limits.burst:  # don't let a flood make us write as fast as it reads
            self._error(None, WsError("rate_limited", f"over {limits.rate:g} requests/s; request dropped"))
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
        for sub in self.subs.values():
            self.server.hub.unsubscribe(sub)
        self.subs.clear()
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

    def _error(self, rid: Any, exc: WsError) -> None:
        self.replies.append(self.codec.error(rid, exc))
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
                self._reply(req.id, kind, {"channels": self._subscribe(list(body.channels))})
            elif kind == "unsubscribe":
                self._reply(req.id, kind, {"channels": self._unsubscribe(list(body.channels))})
            elif self.inflight >= self.limits.max_inflight:
                raise WsError("rate_limited", f"{self.inflight} trading requests already in flight")
            else:
                self.inflight += 1
                self._spawn(self._trade(req))
        except WsError as exc:
            self._error(req.id, exc)

    def _subscribe(self, channels: list[str]) -> list[str]:
        assert self.principal is not None
        wanted = {c: self.server.topic(c, self.principal) for c in channels if c not in self.subs}
        if len(self.subs) + len(wanted) > self.limits.max_channels:
            raise WsError("rate_limited", f"at most {self.limits.max_channels} channels per connection")
        for channel, (topic, accept) in wanted.items():
            sub = Subscription(frozenset({topic}), self.inbox, accept)
            self.subs[channel] = sub
            self.server.hub.attach(sub)
            if channel.startswith("book:"):
                symbol, _, depth = channel[5:].partition(":")
                self.books[channel] = _Book(symbol, int(depth or 0))
                self.inbox.put(SNAP, channel)  # after attach: the snapshot covers every delta before it
        return sorted(self.subs)

    def _unsubscribe(self, channels: list[str]) -> list[str]:
        for channel in channels:
            sub = self.subs.pop(channel, None)
            if sub is not None:
                self.server.hub.unsubscribe(sub)
                self.books.pop(channel, None)
        return sorted(self.subs)

    async def _trade(self, req: Request) -> None:
        try:
            self._reply(req.id, req.kind, await self._order_request(req.kind, req.body))
        except Refused as refused:
            self._error(req.id, WsError(refused.code, refused.message or refused.reason, refused.reason))
        except Overloaded as exc:
            self._error(req.id, WsError("rate_limited", str(exc)))
        except Unavailable as exc:
            self._error(req.id, WsError("internal", f"unavailable: {exc}"))
        except Exception:
            log.exception("ws.request_failed", extra={"fields": {"type": req.kind}})
            self._error(req.id, WsError("internal", "internal error"))
        finally:
            self.inflight -= 1

    async def _order_request(self, kind: str, body: Any) -> dict[str, Any]:
        """The order-entry path of every transport (`entry`), with the order history read off the loop."""
        principal, find = self.principal, self.server.store.get_order
        assert principal is not None
        if kind in READS_HISTORY:
            cmd = await self.loop.run_in_executor(None, command, principal, kind, body, find)
        else:
            cmd = command(principal, kind, body, find)
        # Shielded: a session that ends mid-request must not cancel the engine's future (the
        # engine thread would then fail resolving it); the order still happens, unacknowledged.
        (result,) = await asyncio.shield(asyncio.wrap_future(self.server.core.submit([cmd], outcomes)))
        return answer(kind, result)

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
                pushes = await self._pushes(self.inbox.drain())
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

    async def _pushes(self, items: list[tuple[str, Any]]) -> list[Any]:
        """Encoded pushes; book channels keep their seq gapless, re-snapshotting when they cannot."""
        out: list[Any] = []
        push = self.codec.push
        for topic, item in items:
            if topic == SNAP:
                book = self.books.get(item)
                if book is not None:
                    out.append(await self._snapshot(book))
            elif type(item) is BookView:
                book = self.books.get(topic)
                if book is None or book.seq is None or item.seq <= book.seq:
                    continue  # unsubscribed, or covered by the snapshot
                if item.prev_seq > book.seq:
                    out.append(await self._snapshot(book))
                    continue
                book.seq = item.seq
                out.append(push(topic, item))
            else:
                out.append(push(topic, item))
        return out

    async def _snapshot(self, book: _Book) -> Any:
        feed = self.server.feeds.book
        view = await self.loop.run_in_executor(
            None, self.server.core.query, lambda venue: feed.snapshot(venue, book.symbol, book.depth)
        )
        book.seq = view.seq
        return self.codec.push(view.channel, view)
