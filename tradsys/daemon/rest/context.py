"""The part of grpc.ServicerContext the servicers use, for a call that arrived over HTTP, and the
gRPC status of its end mapped to an HTTP status with a JSON body.

With it a REST call runs the very servicer method a gRPC call runs: same authentication (the
`Authorization` header is the call's `authorization` metadata), same validation, same refusals.
"""

from collections.abc import Sequence
from typing import NoReturn

import grpc
import orjson

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
"""Google's mapping of gRPC codes onto HTTP (as grpc-gateway does); anything else is 500. A risk or
market-state refusal (FAILED_PRECONDITION) is 400, its rule named in the error's `details`."""


class Aborted(Exception):
    """What `context.abort` raises: the call ends with this status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RestContext:
    __slots__ = ("_metadata", "trailing")

    def __init__(self, authorization: str | None) -> None:
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", authorization),) if authorization is not None else ())
        self.trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.trailing = tuple(metadata)

    def time_remaining(self) -> float | None:
        """No deadline travels with an HTTP request: the servicer applies its own."""
        return None


def error(code: grpc.StatusCode, message: str, trailing: Sequence[tuple[str, str]] = ()) -> tuple[int, bytes]:
    """The HTTP status and `{code, message, details}` body of a call that ended with `code`.
    `details` holds `{"reason": ...}` when a rule refused it (the gRPC `tradsys-reason` trailer)."""
    details = [{"reason": value} for key, value in trailing if key == "tradsys-reason"]
    body = orjson.dumps({"code": code.name, "message": message, "details": details})
    return HTTP_STATUS.get(code, 500), body
