"""The WebSocket codecs: `/ws` speaks JSON text frames, `/ws/v2` binary `ws.proto` envelopes.

Both decode a frame into a `Request` whose body is the gRPC/ws.proto request message, so JSON and
protobuf clients share every check after decoding, and both turn replies, refusals and pushes
into frames through the one `Codec` interface the session uses.
"""

import json
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from google.protobuf.message import DecodeError

from tradsys.daemon.book_feed import BookView
from tradsys.daemon.entry import Refused
from tradsys.daemon.hub import Encoded
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

REQUESTS = ("auth", "subscribe", "unsubscribe", "place", "cancel", "amend", "cancel_all", "ping", "pong")
TRADING = frozenset({"place", "cancel", "amend", "cancel_all"})
PUSH_KIND = {"book": "book_update", "trades": "trade", "bars": "bar", "orders": "order_event",
             "positions": "position", "alerts": "alert"}


class Request(NamedTuple):
    id: Any
    kind: str
    body: Any
    """The ws.proto/gRPC request message, whichever codec decoded it."""


class WsError(Refused):
    """A request the WebSocket refuses itself (a bad frame, an unknown channel, a limit reached);
    `request_id` is the id its frame carried, if one could be read."""

    def __init__(self, code: str, message: str, request_id: Any = None) -> None:
        super().__init__(code, message)
        self.request_id = request_id


class Codec(Protocol):
    """One wire format: frames in, requests out; replies, refusals and pushes in, frames out."""

    name: str

    def decode(self, frame: str | bytes) -> Request:
        """The request in `frame`, or WsError saying why there is none."""
        ...

    def reply(self, rid: Any, kind: str, result: dict[str, Any]) -> Any: ...

    def error(self, rid: Any, refused: Refused) -> Any: ...

    def push(self, topic: str, item: Any) -> Any:
        """A published item as a push, encoded once for every session that sends it."""
        ...

    def frames(self, pushes: list[Any], batch: int) -> list[Any]:
        """Pushes as frames, runs of them batched up to `batch` a frame."""
        ...


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
            exc.request_id = rid
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

    def error(self, rid: Any, refused: Refused) -> str:
        body: dict[str, Any] = {"code": refused.code, "message": refused.message or refused.reason}
        if refused.reason:
            body["reason"] = refused.reason
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
            raise WsError("unsupported", f"{kind or 'an empty envelope'} is not a request; "
                           f"expected one of {', '.join(REQUESTS)}", env.id)
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

    def error(self, rid: Any, refused: Refused) -> bytes:
        message = refused.message or refused.reason
        if refused.reason:
            message = f"{refused.reason}: {message}"
        err = common.Error(code=self.ERROR_CODES.get(refused.code, common.ERROR_CODE_INTERNAL), message=message)
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
