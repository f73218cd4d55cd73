"""API tokens: HS256 JWTs signed with the daemon's secret, and the role checks made on them.

Only HS256 is ever accepted. The algorithm is checked before the signature so that `alg: none` and
RS/ES tokens (the RS/HS key-confusion attack) are refused by name rather than by accident.
The secret never appears in a log line or an exception message.
"""

import logging
import os
import secrets
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import jwt

from tradsys.daemon.logs import log_event

ALGORITHM = "HS256"
ALL_ACCOUNTS = "*"
ACTIONS = ("read", "trade", "admin")
SECRET_FILE = "secret.key"
ADMIN_TOKEN_FILE = "admin.token"

log = logging.getLogger(__name__)


class Role(StrEnum):
    """viewer < trader < admin."""

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"


class AuthError(Exception):
    """A credential that cannot be accepted.

    `code` is stable, for mapping to wire statuses: missing, malformed, bad_signature, expired,
    bad_claims, wrong_algorithm.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PermissionDenied(Exception):
    """A valid principal asking for more than its role allows."""


class AccountRequired(Exception):
    """A request that leaves its account to the token, when the token does not name exactly one."""


class SecretError(Exception):
    """The secret file is missing or unusable."""


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    accounts: tuple[str, ...]
    """Accounts the token names: a trader trades and reads them, a viewer reads them; ("*",) names
    every account (always so for admin)."""
    expires: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", _role(self.role))
        object.__setattr__(self, "accounts", tuple(self.accounts))

    def covers(self, account: str) -> bool:
        """Whether the token names `account`; ALL_ACCOUNTS asks whether it names every account."""
        return self.role is Role.ADMIN or ALL_ACCOUNTS in self.accounts or account in self.accounts

    def can(self, action: str, account: str | None = None) -> bool:
        """The one rule: admin does everything; an account's orders, fills and positions are read,
        and (by traders) traded, only through a token that names the account.

        `read` without an account is a read of no account's data (market data, risk state, alerts):
        every role may. `trade` without an account means every account, so a caller that forgets
        the account fails closed.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        if self.role is Role.ADMIN:
            return True
        if action == "read":
            return account is None or self.covers(account)
        return action == "trade" and self.role is Role.TRADER and self.covers(account or ALL_ACCOUNTS)


def require(principal: Principal, action: str, account: str | None = None) -> None:
    """Raise PermissionDenied, saying what was needed, unless `principal.can(action, account)`."""
    if principal.can(action, account):
        return
    role = principal.role.value
    if action == "admin":
        raise PermissionDenied(f"role {role} may not perform admin actions; needs role admin")
    allowed = f"accounts [{', '.join(principal.accounts)}]" if principal.accounts else "no accounts"
    if action == "read":
        wanted = "every account; name the account" if account == ALL_ACCOUNTS else account
        raise PermissionDenied(f"role {role} may read {allowed}, not {wanted}")
    if principal.role is not Role.TRADER:
        raise PermissionDenied(f"role {role} may not trade; needs role trader or admin")
    if account is None:
        raise PermissionDenied(f"role trader may trade {allowed} only; name the account")
    raise PermissionDenied(f"role trader may trade {allowed}, not {account}")


def own_account(principal: Principal, account: str) -> str:
    """The account a request is for: the one it names, else the one its token names."""
    if account:
        return account
    if len(principal.accounts) == 1 and principal.accounts[0] != ALL_ACCOUNTS:
        return principal.accounts[0]
    raise AccountRequired(f"account is required (the token {'allows several' if principal.accounts else 'names none'})")


def readable(principal: Principal) -> frozenset[str] | None:
    """Accounts whose orders, fills and positions `principal` reads; None for every account."""
    if principal.covers(ALL_ACCOUNTS):
        return None
    if not principal.accounts:
        raise PermissionDenied(f"the {principal.role.value} token names no accounts: it reads market data only")
    return frozenset(principal.accounts)


def read_scope(principal: Principal, account: str) -> str | None:
    """The account a read of orders, fills or positions is filtered to: the one named, else the
    token's only one, or None (every account) for a token that names every account."""
    if account:
        require(principal, "read", account)
        return account
    return None if readable(principal) is None else own_account(principal, "")


# -- tokens ----------------------------------------------------------------------------------------


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValueError(f"role must be one of {', '.join(Role)}, got {value!r}") from None


def token_accounts(role: Role | str, accounts: Iterable[str]) -> list[str]:
    """The `accounts` claim for `role`, refusing combinations that would mislead the holder.

    A viewer token may name none: it then reads market data, risk state and alerts, but no
    account's orders, fills or positions.
    """
    role, accounts = _role(role), list(dict.fromkeys(accounts))
    if not all(accounts):
        raise ValueError("account ids must not be empty")
    if role is Role.ADMIN:
        if accounts not in ([], [ALL_ACCOUNTS]):
            raise ValueError("an admin token covers every account; do not name accounts")
        return [ALL_ACCOUNTS]
    if role is Role.TRADER and not accounts:
        raise ValueError("a trader token needs at least one account")
    return accounts


def issue_token(
    secret: bytes, role: Role | str, accounts: Iterable[str] = (), ttl: timedelta | None = None, subject: str = "cli"
) -> str:
    """A signed token; `ttl=None` means it never expires (it stays valid until the secret changes)."""
    role, accounts = _role(role), token_accounts(role, accounts)
    if not subject:
        raise ValueError("subject must not be empty")
    if ttl is not None and ttl <= timedelta(0):
        raise ValueError(f"ttl must be positive, got {ttl}")
    now = datetime.now(UTC).replace(microsecond=0)
    claims: dict[str, object] = {
        "sub": subject,
        "role": role.value,
        "accounts": accounts,
        "iat": now,
        "jti": uuid.uuid4().hex,
    }
    if ttl is not None:
        claims["exp"] = now + ttl
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: bytes, token: str | None) -> Principal:
    """The principal a token speaks for, or AuthError saying why it is refused."""
    if not token:
        raise AuthError("missing", "no token")
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.DecodeError:
        raise AuthError("malformed", "not a JWT (expected three base64url segments)") from None
    if algorithm != ALGORITHM:
        what = "unsigned tokens (alg none)" if str(algorithm).lower() == "none" else f"algorithm {algorithm!r}"
        raise AuthError("wrong_algorithm", f"{what} not accepted; tokens must be {ALGORITHM}")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], leeway=0, options={"require": ["sub", "role", "iat", "jti"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("expired", "token has expired; issue a new one with `tradsys auth token`") from None
    except jwt.InvalidSignatureError:
        raise AuthError("bad_signature", "signature does not match this daemon's secret") from None
    except (jwt.MissingRequiredClaimError, jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError) as exc:
        raise AuthError("bad_claims", str(exc)) from None
    except jwt.InvalidTokenError as exc:
        raise AuthError("malformed", str(exc)) from None
    return _principal(claims)


def _principal(claims: dict[str, object]) -> Principal:
    subject, role, accounts, exp = claims["sub"], claims["role"], claims.get("accounts", []), claims.get("exp")
    if not isinstance(subject, str) or not subject:
        raise AuthError("bad_claims", "sub must be a non-empty string")
    if not isinstance(role, str) or role not in tuple(Role):
        raise AuthError("bad_claims", f"role must be one of {', '.join(Role)}, got {role!r}")
    if not isinstance(accounts, list) or not all(isinstance(a, str) and a for a in accounts):
        raise AuthError("bad_claims", "accounts must be a list of account ids")
    expires = datetime.fromtimestamp(exp, UTC) if isinstance(exp, (int, float)) else None
    return Principal(subject=subject, role=Role(role), accounts=tuple(accounts), expires=expires)


def parse_bearer(header_value: str | None) -> str:
    """The token in an `authorization: Bearer <token>` header or gRPC metadata value."""
    if header_value is None or not header_value.strip():
        raise AuthError("missing", "no credentials; send `authorization: Bearer <token>`")
    parts = header_value.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthError("malformed", "authorization must be `Bearer <token>`")
    return parts[1]


# -- secret files ----------------------------------------------------------------------------------


def _publish(path: Path, text: str, replace: bool) -> bool:
    """Write `text` to `path` atomically; without `replace`, only if `path` does not exist yet.

    The content goes to a private temporary file (O_EXCL, 0600 from its first instant) that is
    then linked or renamed into place, so no one ever sees the file readable by others or half
    written, and of two daemons starting at once only the first one's secret is kept.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _tighten(path: Path, mode: int) -> None:
    """Refuse to share secrets: narrow a group/world-accessible path and say so."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        path.chmod(mode)
        log_event(log, "warning", "auth.permissions_fixed", path=str(path), was=oct(current), now=oct(mode))


def load_secret(home: Path) -> bytes:
    """The daemon's signing secret, read-only: the CLI must not create one the daemon doesn't use."""
    path = home / SECRET_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise SecretError(f"no secret in {home} — start the daemon once (`tradsys daemon start`) to create it") from None
    except OSError as exc:
        raise SecretError(f"cannot read {path}: {exc.strerror}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise SecretError(f"{path} is not 64 hex digits; delete it to create a new one (this invalidates all tokens)")
    return secret


def ensure_secrets(home: Path) -> tuple[bytes, str]:
    """Create the signing secret and the admin token on first start; return both.

    The admin token never expires: it lives next to the secret with the same 0600 protection, so
    whoever can read it could mint tokens anyway. Rotate by deleting secret.key and restarting,
    which invalidates every token and writes a new admin token.
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(home, 0o700)
    secret_path, token_path = home / SECRET_FILE, home / ADMIN_TOKEN_FILE
    if _publish(secret_path, secrets.token_bytes(32).hex() + "\n", replace=False):
        log_event(log, "info", "auth.secret_created", path=str(secret_path))
    _tighten(secret_path, 0o600)
    secret = load_secret(home)
    if _publish(token_path, issue_token(secret, Role.ADMIN, subject="admin") + "\n", replace=False):
        log_event(log, "info", "auth.admin_token_created", path=str(token_path))
    _tighten(token_path, 0o600)
    token = token_path.read_text().strip()
    try:
        if verify_token(secret, token).role is Role.ADMIN:
            return secret, token
        reason = "not an admin token"
    except AuthError as exc:
        reason = exc.code
    # Typically left over from a deleted secret.key: replace it so the CLI keeps working.
    token = issue_token(secret, Role.ADMIN, subject="admin")
    _publish(token_path, token + "\n", replace=True)
    log_event(log, "warning", "auth.admin_token_replaced", path=str(token_path), reason=reason)
    return secret, token
