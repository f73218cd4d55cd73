"""The CLI's gRPC client: where the daemon is, which token to send, and gRPC errors as exit codes.

Defaults reach the local daemon with nothing typed: host 127.0.0.1, the gRPC port from
HOME/daemon.pid (else 50051), the token from --token / TRADSYS_TOKEN (else HOME/admin.token), and
TLS verified against --ca / TRADSYS_CA, else against the certificate the local daemon names in its
pid file when it serves TLS (plain text otherwise).
Every failure becomes a `CliError` with a one-line message and an exit code, translated once here.
"""

import base64
import binascii
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tradsys.home import resolve_home

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH = 0, 1, 2, 3, 4
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 50051
DEFAULT_ACCOUNT = "default"
"""The account an all-accounts token (admin) trades and lists when none is named."""
ALL = "*"
UNARY_TIMEOUT = 15.0


class CliError(Exception):
    """A user-facing failure: `message` is printed as one line on stderr, `code` is the exit code,
    `reason` the venue's name for a refusal (`max_notional`, ...) when it gave one."""

    def __init__(self, code: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


@dataclass
class Target:
    """Where and as whom the CLI talks to the daemon; set once by the root callback."""

    host: str | None = None
    port: int | None = None
    token: str | None = None
    home: Path | None = None
    account: str | None = None
    ca: Path | None = None

    def resolved_home(self) -> Path:
        return resolve_home(self.home)

    def address(self) -> tuple[str, int]:
        """--host/--grpc-port, else the running daemon's pid file, else 127.0.0.1:50051."""
        return self._address(_pid_info(self.resolved_home()))

    def _address(self, pid_info: dict[str, Any]) -> tuple[str, int]:
        pid_host, pid_port = _pid_address(pid_info)
        return _local(self.host or pid_host or DEFAULT_HOST), self.port or pid_port or DEFAULT_PORT

    def root_certificates(self) -> bytes | None:
        """PEM to verify the daemon's TLS certificate: --ca, else the local daemon's own certificate
        when the address is the local daemon's; None for plain text."""
        path = self.ca
        if path is None:
            info = _pid_info(self.resolved_home())
            pid_host, pid_port = _pid_address(info)
            if pid_port is not None and (_local(pid_host or DEFAULT_HOST), pid_port) == self._address(info):
                path = info.get("tls_cert")
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise CliError(EXIT_USAGE, f"cannot read the CA certificate {path}: {exc.strerror}") from None

    def bearer(self) -> str | None:
        if self.token:
            return self.token.strip()
        try:
            return (self.resolved_home() / "admin.token").read_text().strip() or None
        except OSError:
            return None

    def token_accounts(self) -> tuple[str, ...]:
        """The accounts claim of the token (read unverified: the daemon verifies), or () if unknown."""
        token = self.bearer()
        if token is None:
            return ()
        claims = _claims(token)
        if claims.get("role") == "admin":
            return (ALL,)
        accounts = claims.get("accounts") or ()
        return tuple(a for a in accounts if isinstance(a, str))

    def own_account(self, explicit: str | None = None) -> str | None:
        """The account to trade and list as: --account > TRADSYS_ACCOUNT > the token's only
        account > "default" for a token that covers every account. None (ALL) means every account."""
        chosen = explicit or self.account or os.environ.get("TRADSYS_ACCOUNT") or None
        if chosen == ALL:
            return None
        if chosen:
            return chosen
        accounts = self.token_accounts()
        if len(accounts) == 1 and accounts[0] != ALL:
            return accounts[0]
        return DEFAULT_ACCOUNT


def _claims(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (the daemon verifies); {} if it is not one. Decoded here rather
    than with PyJWT, which would cost every command its import."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def _local(host: str) -> str:
    """A wildcard listen address, as the address to connect to."""
    return DEFAULT_HOST if host in ("0.0.0.0", "::", "") else host


def _pid_info(home: Path) -> dict[str, Any]:
    try:
        info = json.loads((home / "daemon.pid").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _pid_address(info: dict[str, Any]) -> tuple[str | None, int | None]:
    try:
        host, _, port = str(info["grpc"]).rpartition(":")
        return host or None, int(port)
    except (ValueError, KeyError):
        return None, None


target = Target()
"""The process-wide target, filled in by the root callback from the global options."""


STUBS = {
    "orders": "orders_pb2_grpc:OrderServiceStub",
    "market": "marketdata_pb2_grpc:MarketDataServiceStub",
    "risk": "risk_pb2_grpc:RiskServiceStub",
    "alerts": "alerts_pb2_grpc:AlertServiceStub",
    "strategy": "strategy_pb2_grpc:StrategyServiceStub",
}
"""Client attribute -> the generated stub class serving it."""


class Client:
    """Stubs for the services with the token attached and errors translated."""

    def __init__(self, where: Target | None = None) -> None:
        self.target = where or target
        self.host, self.port = self.target.address()
        self.token = self.target.bearer()
        options = [
            ("grpc.enable_retries", 0),
            ("grpc.max_receive_message_length", 64 << 20),
            # reconnect quickly after a daemon restart (live views keep one channel all day)
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        roots = self.target.root_certificates()
        address = f"{self.host}:{self.port}"
        self.tls = roots is not None
        self.channel = (
            grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=roots), options=options)
            if roots is not None else grpc.insecure_channel(address, options=options)
        )

    def __getattr__(self, name: str) -> Any:
        """A service stub (`orders`, `market`, `risk`, `alerts`, `strategy`), its generated module
        imported the first time a command uses it."""
        spec = STUBS.get(name)
        if spec is None:
            raise AttributeError(name)
        module, _, cls = spec.partition(":")
        stub = getattr(importlib.import_module(f"tradsys.proto.{module}"), cls)(self.channel)
        setattr(self, name, stub)
        return stub

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def call(self, method: Callable[..., Any], request: Any, timeout: float = UNARY_TIMEOUT) -> Any:
        """A unary call; any gRPC failure is raised as a CliError."""
        try:
            return method(request, metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise self.error(exc) from None

    def stream(self, method: Callable[..., Any], request: Any) -> Any:
        """A server stream (a cancellable iterator); iterate under `translate` or catch grpc.RpcError."""
        return method(request, metadata=self.metadata)

    def error(self, exc: grpc.RpcError) -> CliError:
        return translate(exc, self.host, self.port, self.token is not None, self.target.resolved_home(), self.tls)

    def close(self) -> None:
        self.channel.close()


def translate(exc: grpc.RpcError, host: str, port: int, had_token: bool, home: Path, tls: bool = False) -> CliError:
    """One gRPC failure as an exit code and one line a person can act on."""
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and _unreachable(details, code):
        lowered = details.lower()
        if tls and any(word in lowered for word in ("handshake", "ssl", "certificate")):
            return CliError(EXIT_UNREACHABLE, f"no TLS connection to the daemon on {host}:{port}: is --ca the "
                                              f"certificate it serves, and does it serve TLS? ({details})")
        if not tls and "failed to connect" in lowered and "socket closed" in lowered:
            # the port is open, but the connection closed before HTTP/2 began: a TLS listener
            return CliError(EXIT_UNREACHABLE, f"the daemon on {host}:{port} does not answer plain-text gRPC: if it "
                                              f"serves TLS, pass its certificate with --ca ({details})")
        return CliError(
            EXIT_UNREACHABLE, f"daemon not running on {host}:{port} — start it with `tradsys daemon start`"
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if not had_token:
            return CliError(
                EXIT_AUTH,
                f"auth: no token — pass --token or set TRADSYS_TOKEN (no admin token in {home})",
            )
        return CliError(EXIT_AUTH, f"auth: token refused ({details})")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return CliError(EXIT_AUTH, f"auth: {details}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return CliError(EXIT_FAILED, f"daemon unavailable: {details}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return CliError(EXIT_FAILED, f"not supported by this daemon: {details}")
    refused, reason = details.startswith("rejected:"), _reason(exc)
    message = details if refused else f"error: {details}"
    if (code == grpc.StatusCode.NOT_FOUND or reason.startswith("unknown_")
            or (code == grpc.StatusCode.INVALID_ARGUMENT and not refused)):
        # a name the user typed that the daemon does not know (a symbol, an order, a limit, a
        # strategy, an alert), or a value it cannot take: a usage error, as when the CLI finds it
        return CliError(EXIT_USAGE, message, reason)
    return CliError(EXIT_FAILED, message, reason)


def _reason(exc: grpc.RpcError) -> str:
    """The venue's refusal reason, from the `tradsys-reason` trailing metadata."""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return next((str(value) for key, value in trailing or () if key == "tradsys-reason"), "")


def _unreachable(details: str, code: grpc.StatusCode) -> bool:
    # the daemon answered but its engine is stopping or failed: that is not "not running"
    return "engine" not in details.lower() and "durable" not in details.lower()

