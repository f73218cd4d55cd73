"""REST calls in, the gRPC servicers' methods called, their answers out as JSON.

A request message is built as grpc-gateway builds it: path segments fill the fields they name,
then the body (the protobuf JSON mapping) fills the whole message or the one field the route names,
and query parameters fill the rest. A servicer method runs on a bounded pool of its own, never on
the HTTP loop (it may block on the engine or the store), unless it is a coroutine (order entry),
which is awaited on the loop; past `max_inflight` calls at once the next is refused with
RESOURCE_EXHAUSTED (429) instead of queued without bound.
"""

import asyncio
import inspect
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from tradsys.daemon.rest.context import Aborted, RestContext, error
from tradsys.daemon.rest.routes import PREFIX, ROUTES, Route

log = logging.getLogger("tradsys.rest")

JSON = "application/json"
Answer = tuple[int, str, bytes]
INTEGERS = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
            FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
            FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
            FieldDescriptor.TYPE_SFIXED64}
BOOLS = {"true": True, "false": False, "1": True, "0": False}


def to_json(message: Message) -> bytes:
    """The protobuf JSON mapping with the .proto field names, every field present (zeros too), so
    a response always has the shape its schema documents."""
    return orjson.dumps(json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True))


@dataclass(frozen=True)
class Bound:
    """A route with its path as a pattern and the servicer method it calls."""

    route: Route
    pattern: re.Pattern[str]
    request: type[Message]
    call: Any
    on_loop: bool
    """The method is a coroutine (order entry, which never blocks the loop): awaited on the HTTP
    loop rather than run on the pool."""


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/:]+)" for i, p in enumerate(parts))
    return re.compile(regex)


class Gateway:
    def __init__(self, servicers: dict[str, Any], workers: int = 8, max_inflight: int = 256,
                 counted: Callable[[str, int], None] = lambda method, status: None) -> None:
        self.bound = [
            Bound(r, _pattern(r.template), GetMessageClass(r.descriptor.input_type), call, inspect.iscoroutinefunction(call))
            for r in ROUTES
            for call in (getattr(servicers[r.service], r.method),)
        ]
        self.max_inflight = max_inflight
        self.counted = counted
        """Told each routed call's method and HTTP status (the daemon's metrics)."""
        self.inflight = 0
        """Calls being served now; read and changed on the HTTP loop only."""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tradsys-rest")

    def match(self, verb: str, path: str) -> tuple[Bound, dict[str, str]] | list[str] | None:
        """The route for `verb path` and its path fields; else the verbs `path` allows (405), or None (404)."""
        allowed = []
        for bound in self.bound:
            found = bound.pattern.fullmatch(path)
            if found is not None:
                if bound.route.verb == verb:
                    return bound, {k: unquote(v) for k, v in found.groupdict().items()}
                allowed.append(bound.route.verb)
        return allowed or None

    async def handle(self, verb: str, target: str, authorization: str | None, body: bytes) -> Answer:
        path, _, query = target.partition("?")
        found = self.match(verb, path)
        if found is None:
            return _error(grpc.StatusCode.NOT_FOUND, f"no such path: {path} (the routes: {PREFIX}/openapi.json)")
        if isinstance(found, list):
            return 405, JSON, orjson.dumps({"code": "METHOD_NOT_ALLOWED", "message": f"{path} takes {', '.join(found)}",
                                            "details": []})
        bound, fields = found
        if self.inflight >= self.max_inflight:
            answer = _error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"{self.inflight} REST calls are being served, the daemon's limit "
                            "([http] rest_max_inflight); retry later")
        else:
            self.inflight += 1
            try:
                answer = await self._call(bound, fields, query, authorization, body)
            finally:
                self.inflight -= 1
        self.counted(bound.route.method, answer[0])
        return answer

    async def _call(self, bound: Bound, fields: dict[str, str], query: str, authorization: str | None, body: bytes) -> Answer:
        context = RestContext(authorization)
        try:
            if bound.on_loop:  # order entry: a small body, parsed on the loop as the WebSocket's are
                payload = to_json(await bound.call(build_request(bound, fields, query, body), context))
            else:
                payload = await asyncio.get_running_loop().run_in_executor(
                    self._pool, _run, bound, fields, query, body, context)
        except Aborted as exc:
            status, payload = error(exc.code, exc.message, context.trailing)
            return status, JSON, payload
        except Exception:
            log.exception("rest.call_failed", extra={"fields": {"method": bound.route.method}})
            return _error(grpc.StatusCode.INTERNAL, "internal error")
        return 200, JSON, payload

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _run(bound: Bound, fields: dict[str, str], query: str, body: bytes, context: RestContext) -> bytes:
    return to_json(bound.call(build_request(bound, fields, query, body), context))


def _error(code: grpc.StatusCode, message: str) -> Answer:
    status, payload = error(code, message)
    return status, JSON, payload


def build_request(bound: Bound, fields: dict[str, str], query: str, body: bytes) -> Message:
    """The request message from the path, the body and the query; INVALID_ARGUMENT (Aborted) if
    any of them does not fit it."""
    route, request = bound.route, bound.request()
    try:
        if route.body:
            document = orjson.loads(body) if body.strip() else {}
            if not isinstance(document, dict):
                raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, "the body must be a JSON object")
            json_format.ParseDict(document, request if route.body == "*" else getattr(request, route.body))
        elif body.strip():
            raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"{route.verb} {route.template} takes no body")
    except (orjson.JSONDecodeError, json_format.ParseError) as exc:
        raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"the body is not a valid {request.DESCRIPTOR.name}: {exc}") \
            from None
    for name, value in fields.items():
        _set(request, name, [value])
    if query:
        if route.body == "*":
            raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"{route.verb} {route.template} takes its fields in the body")
        values: dict[str, list[str]] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            values.setdefault(key, []).append(value)
        for name, given in values.items():
            if name in fields or name == route.body:
                raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"{name} is given by the path or the body")
            _set(request, name, given)
    return request


def query_fields(descriptor: Descriptor, route: Route) -> list[FieldDescriptor]:
    """The request fields a query string may set: scalars and enums not in the path or the body."""
    if route.body == "*":
        return []
    in_path = set(re.findall(r"\{(\w+)\}", route.path))
    return [f for f in descriptor.fields if f.name not in in_path and f.name != route.body
            and f.type != FieldDescriptor.TYPE_MESSAGE]


def _set(message: Message, name: str, values: list[str]) -> None:
    descriptor = message.DESCRIPTOR
    field = descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name)
    if field is None or field.type == FieldDescriptor.TYPE_MESSAGE:
        known = ", ".join(f.name for f in descriptor.fields if f.type != FieldDescriptor.TYPE_MESSAGE)
        raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"unknown parameter {name!r}; {descriptor.name} takes {known}")
    repeated = field.is_repeated
    if len(values) > 1 and not repeated:
        raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"{name} is given more than once")
    converted = [_scalar(field, v) for v in values]
    try:
        if repeated:
            getattr(message, field.name).extend(converted)
        else:
            setattr(message, field.name, converted[0])
    except (ValueError, TypeError) as exc:
        raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {exc}") from None


def _scalar(field: FieldDescriptor, text: str) -> Any:
    try:
        if field.type in INTEGERS:
            return int(text)
        if field.type == FieldDescriptor.TYPE_BOOL:
            return BOOLS[text.lower()]
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return float(text)
        if field.type == FieldDescriptor.TYPE_ENUM:
            value = field.enum_type.values_by_name.get(text)
            return value.number if value is not None else field.enum_type.values_by_number[int(text)].number
        if field.type == FieldDescriptor.TYPE_BYTES:
            return text.encode()
        return text
    except (ValueError, KeyError):
        raise Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"{field.name}={text!r} is not a valid {_kind(field)}") from None


def _kind(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return f"{field.enum_type.name} (one of {', '.join(field.enum_type.values_by_name)})"
    return "boolean (true or false)" if field.type == FieldDescriptor.TYPE_BOOL else "number"
