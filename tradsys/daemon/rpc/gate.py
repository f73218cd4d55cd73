"""Authentication and refusals for every gRPC call, in one place."""

from collections.abc import Callable
from datetime import datetime, timezone
from typing import NoReturn

import grpc

from tradsys.daemon.auth import (
    AccountRequired,
    AuthError,
    PermissionDenied,
    Principal,
    own_account,
    parse_bearer,
    read_scope,
    require,
    verify_token,
)
from tradsys.daemon.core import Overloaded, Unavailable
from tradsys.proto import common_pb2 as common

INVALID = {
    "price_precision", "qty_precision", "invalid_price", "invalid_qty", "invalid_side", "invalid_type",
    "invalid_tif", "invalid_stop_price", "invalid_expire", "invalid_post_only", "invalid_amend", "invalid_amount",
    "invalid_limit", "unknown_limit", "min_qty", "max_qty",
}
NOT_FOUND = {"unknown_symbol", "unknown_order"}
EXISTS = {"duplicate_client_id", "duplicate_order_id"}
REASON_CODES = {
    "halted": common.ERROR_CODE_HALTED,
    "circuit_breaker": common.ERROR_CODE_HALTED,
    "kill_switch": common.ERROR_CODE_KILL_SWITCH,
    "post_only": common.ERROR_CODE_POST_ONLY_WOULD_CROSS,
    "order_closed": common.ERROR_CODE_ORDER_CLOSED,
}
STATUS_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: common.ERROR_CODE_INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: common.ERROR_CODE_NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: common.ERROR_CODE_DUPLICATE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: common.ERROR_CODE_RATE_LIMITED,
    grpc.StatusCode.FAILED_PRECONDITION: common.ERROR_CODE_RISK_REJECTED,
}


def status_for(reason: str) -> grpc.StatusCode:
    """The status code a refusal reason maps to: bad input, missing thing, or a rule said no."""
    if reason in INVALID:
        return grpc.StatusCode.INVALID_ARGUMENT
    if reason in NOT_FOUND:
        return grpc.StatusCode.NOT_FOUND
    if reason in EXISTS:
        return grpc.StatusCode.ALREADY_EXISTS
    if reason == "rate_limit":
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return grpc.StatusCode.FAILED_PRECONDITION


def error_code(reason: str) -> int:
    """The wire's ErrorCode for a refusal in a batch result or a WebSocket reply: the one the proto
    names for the reason where there is one, else the one of its status code."""
    return REASON_CODES.get(reason) or STATUS_CODES.get(status_for(reason), common.ERROR_CODE_RISK_REJECTED)


def unavailable_status(exc: Unavailable) -> grpc.StatusCode:
    """A full engine queue is the client's to back off from; anything else is the daemon's state."""
    return grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, Overloaded) else grpc.StatusCode.UNAVAILABLE


def refuse(context: grpc.ServicerContext, reason: str, message: str) -> NoReturn:
    context.set_trailing_metadata((("tradsys-reason", reason),))
    context.abort(status_for(reason), f"rejected: {reason} ({message})" if message else f"rejected: {reason}")


CACHE_SIZE = 4096


class Gate:
    def __init__(self, secret: bytes, on_refusal: Callable[[str, str], None] | None = None) -> None:
        self._secret = secret
        self._on_refusal = on_refusal
        self._verified: dict[str, Principal] = {}
        """Tokens already verified: a client sends the same one with every call, and checking a
        signature costs more than a whole engine command. Entries are dropped once expired."""

    def authenticate(self, context: grpc.ServicerContext) -> Principal:
        """The caller's principal from `authorization: Bearer ...`, or abort UNAUTHENTICATED."""
        header = dict(context.invocation_metadata()).get("authorization")
        principal = self._verified.get(header) if header else None
        if principal is not None:
            if principal.expires is None or principal.expires > datetime.now(timezone.utc):
                return principal
            del self._verified[header]
        try:
            principal = verify_token(self._secret, parse_bearer(header))
            if len(self._verified) >= CACHE_SIZE:
                self._verified.clear()
            self._verified[header] = principal
            return principal
        except AuthError as exc:
            self._refused("unauthenticated", exc.code)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{exc.code}: {exc.message}")

    def authorize(self, context: grpc.ServicerContext, principal: Principal, action: str, account: str | None = None) -> None:
        try:
            require(principal, action, account)
        except PermissionDenied as exc:
            self.deny(context, str(exc), action)

    def deny(self, context: grpc.ServicerContext, message: str, action: str) -> NoReturn:
        """Abort PERMISSION_DENIED, counted by the action refused."""
        self._refused("permission_denied", action)
        context.abort(grpc.StatusCode.PERMISSION_DENIED, message)

    def check(self, context: grpc.ServicerContext, action: str, account: str | None = None) -> Principal:
        principal = self.authenticate(context)
        self.authorize(context, principal, action, account)
        return principal

    def read_scope(self, context: grpc.ServicerContext, principal: Principal, account: str) -> str | None:
        """The account a read of orders, fills or positions is filtered to (`auth.read_scope`)."""
        try:
            return read_scope(principal, account)
        except PermissionDenied as exc:
            self.deny(context, str(exc), "read")
        except AccountRequired as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def _refused(self, kind: str, detail: str) -> None:
        if self._on_refusal is not None:
            self._on_refusal(kind, detail)


def default_account(context: grpc.ServicerContext, principal: Principal, account: str) -> str:
    """An empty account means the caller's only account; anything else must be named."""
    try:
        return own_account(principal, account)
    except AccountRequired as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
