"""The OpenAPI 3.1 document of the REST API, generated from the route table and the messages'
descriptors: never written by hand, so it cannot drift from what the gateway serves."""

import re
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from tradsys.daemon.rest.gateway import INTEGERS, query_fields
from tradsys.daemon.rest.routes import ROUTES, Route, streamed

LONG = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
EXAMPLES = {"symbol": "BTC-USD", "order_id": "o-1", "id": "mm-1", "depth": 10, "account": "default",
            "interval": "1m"}
"""Example values of path and query parameters, by field name."""
ERROR = {"$ref": "#/components/schemas/Error"}
DESCRIPTION = """JSON over HTTP for every unary call of the gRPC services (package tradsys.v1), calling the same \
service code with the same validation, errors and authorization. Bodies follow the protobuf JSON mapping with \
the .proto field names: 64-bit integers are strings, enums their names, prices and quantities decimal strings. \
Authorize with a token (`tradsys auth token`): a token reads, and (role trader) trades, only the accounts it names.

Errors carry the gRPC status: `{{code, message, details}}`, `code` its name, `details` `[{{"reason": ...}}]` \
naming the rule that refused a request.

Streaming calls are not served here; the WebSocket (`/ws` JSON, `/ws/v2` protobuf) serves their data: {streams}."""


def document(version: str = "1") -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _error_schema()}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.template, {})[route.verb.lower()] = _operation(route, schemas)
    streams = ", ".join(f"{m.containing_service.name}.{m.name}" for m in streamed())
    return {
        "openapi": "3.1.0",
        "info": {"title": "TradSys REST API", "version": version, "description": DESCRIPTION.format(streams=streams)},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": r.descriptor.containing_service.name} for r in _first_of_each_service()],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {f"Error{status}": {"description": text, "content": {"application/json": {"schema": ERROR}}}
                          for status, text in _STATUS_TEXT.items()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                           "description": "A TradSys token: `tradsys auth token --role viewer`"}},
        },
    }


def _first_of_each_service() -> list[Route]:
    seen: dict[str, Route] = {}
    for route in ROUTES:
        seen.setdefault(route.service, route)
    return list(seen.values())


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    method = route.descriptor
    request, response = method.input_type, method.output_type
    in_path = re.findall(r"\{(\w+)\}", route.path)
    parameters = [_parameter(request.fields_by_name[name], "path") for name in in_path]
    parameters += [_parameter(f, "query") for f in query_fields(request, route)]
    operation: dict[str, Any] = {
        "operationId": f"{method.containing_service.name}_{method.name}",
        "summary": route.summary or method.name,
        "description": f"gRPC `{method.full_name}`.",
        "tags": [method.containing_service.name],
        "parameters": parameters,
        "responses": {"200": {"description": f"A {response.name}",
                              "content": {"application/json": {"schema": _ref(response, schemas)}}}},
    }
    for status in _STATUS_TEXT:
        operation["responses"][str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    if route.body:
        target = request if route.body == "*" else request.fields_by_name[route.body].message_type
        content: dict[str, Any] = {"schema": _ref(target, schemas)}
        if route.example:
            content["example"] = route.example
        operation["requestBody"] = {"required": True, "content": {"application/json": content}}
    return operation


_STATUS_TEXT = {400: "Invalid request, or refused by a risk or market rule (`details` names it)",
                401: "No token, or not a valid one", 403: "The token's role or accounts do not allow it",
                404: "No such order, symbol, strategy or alert", 409: "Already exists (a reused client_id)",
                429: "Too many requests: a rate limit, the engine's queue or the REST call limit",
                503: "The daemon cannot serve it now"}


def _parameter(field: FieldDescriptor, where: str) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": field.name, "in": where, "required": where == "path",
                                 "schema": _scalar_schema(field)}
    if field.is_repeated:
        parameter["schema"] = {"type": "array", "items": parameter["schema"]}
        parameter["explode"] = True
    if field.name in EXAMPLES:
        parameter["example"] = EXAMPLES[field.name]
    return parameter


def _ref(descriptor: Descriptor, schemas: dict[str, Any]) -> dict[str, str]:
    """A reference to the message's schema, adding it (and every message it holds) to `schemas`."""
    name = descriptor.full_name
    if name not in schemas:
        schemas[name] = {}
        schemas[name] = _message_schema(descriptor, schemas)
    return {"$ref": f"#/components/schemas/{name}"}


def _message_schema(descriptor: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    properties = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": _field_schema(value, schemas)}
        else:
            schema = _field_schema(field, schemas)
            if field.is_repeated:
                schema = {"type": "array", "items": schema}
        properties[field.name] = schema
    return {"type": "object", "properties": properties}


def _field_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _ref(field.message_type, schemas)
    return _scalar_schema(field)


def _scalar_schema(field: FieldDescriptor) -> dict[str, Any]:
    kind = field.type
    if kind in LONG:
        return {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
    if kind in INTEGERS:
        return {"type": "integer", "format": "int32", **({"minimum": 0} if "UINT" in _type_name(kind) else {})}
    if kind == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number"}
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum_schema(field.enum_type)
    if kind == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    return {"type": "string"}


def _enum_schema(enum: EnumDescriptor) -> dict[str, Any]:
    return {"type": "string", "enum": list(enum.values_by_name), "title": enum.full_name}


def _type_name(kind: int) -> str:
    return {v: k for k, v in vars(FieldDescriptor).items() if k.startswith("TYPE_")}[kind]


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "description": "The gRPC status name", "example": "PERMISSION_DENIED"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object", "properties": {"reason": {"type": "string"}}}},
        },
    }
