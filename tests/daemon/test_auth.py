"""Tokens, roles, secret files and `tradsys auth token`."""

import base64
import hashlib
import hmac
import json
import logging
import stat
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import typer
from typer.testing import CliRunner, Result

from tradsys.cli.auth import auth_app, parse_ttl
from tradsys.daemon.auth import (
    AccountRequired,
    AuthError,
    PermissionDenied,
    Principal,
    Role,
    SecretError,
    ensure_secrets,
    issue_token,
    load_secret,
    parse_bearer,
    read_scope,
    readable,
    require,
    verify_token,
)

SECRET = bytes(range(32))

# PEM public-key text: what an attacker uses as the HMAC secret in the RS256/HS256 confusion attack.
PUBLIC_KEY_PEM = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo
4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u
+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh
kd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ
0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdg
cKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbc
mwIDAQAB
-----END PUBLIC KEY-----
"""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: dict[str, object], claims: dict[str, object], key: bytes | None) -> str:
    """A token built by hand, so nothing in a JWT library can refuse to make it."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key is not None else b""
    return f"{signing_input}.{b64(signature)}"


CLAIMS = {"sub": "x", "role": "admin", "accounts": ["*"], "iat": 1_700_000_000, "jti": "j1"}


def code_of(token: str, secret: bytes = SECRET) -> str:
    with pytest.raises(AuthError) as err:
        verify_token(secret, token)
    assert str(SECRET) not in str(err.value) and SECRET.hex() not in str(err.value)
    return err.value.code


# -- tokens -----------------------------------------------------------------------------------------


def test_round_trip() -> None:
    token = issue_token(SECRET, "trader", ["a1", "a2", "a1"], timedelta(hours=1), subject="bot")
    principal = verify_token(SECRET, token)
    assert (principal.subject, principal.role, principal.accounts) == ("bot", Role.TRADER, ("a1", "a2"))
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 3600 and claims["jti"]
    assert principal.expires is not None and int(principal.expires.timestamp()) == claims["exp"]


@pytest.mark.parametrize("accounts", [[], ["a1", "a2"], ["*"]])
def test_viewer_tokens_name_what_they_read(accounts: list[str]) -> None:
    principal = verify_token(SECRET, issue_token(SECRET, "viewer", accounts))
    assert (principal.role, principal.accounts) == (Role.VIEWER, tuple(accounts))


def test_admin_token_covers_all_accounts_and_may_not_expire() -> None:
    principal = verify_token(SECRET, issue_token(SECRET, Role.ADMIN))
    assert (principal.role, principal.accounts, principal.expires) == (Role.ADMIN, ("*",), None)
    assert "exp" not in jwt.decode(issue_token(SECRET, "admin"), SECRET, algorithms=["HS256"])


@pytest.mark.parametrize(
    ("role", "accounts", "ttl", "message"),
    [
        ("trader", [], None, "needs at least one account"),
        ("admin", ["a1"], None, "covers every account"),
        ("root", [], None, "role must be one of viewer, trader, admin"),
        ("trader", ["a1"], timedelta(seconds=-1), "ttl must be positive"),
        ("trader", [""], None, "must not be empty"),
    ],
)
def test_issue_refuses_misleading_tokens(role: str, accounts: list[str], ttl: timedelta | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        issue_token(SECRET, role, accounts, ttl)


def test_expired() -> None:
    assert code_of(jwt.encode({**CLAIMS, "exp": 1_700_000_001}, SECRET, algorithm="HS256")) == "expired"


def test_tampered_signature() -> None:
    head, body, sig = issue_token(SECRET, "viewer").split(".")
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    assert code_of(f"{head}.{body}.{flipped}") == "bad_signature"


def test_tampered_payload() -> None:
    head, _, sig = issue_token(SECRET, "viewer").split(".")
    body = b64(json.dumps({**CLAIMS, "role": "admin"}).encode())
    assert code_of(f"{head}.{body}.{sig}") == "bad_signature"


def test_other_secret() -> None:
    assert code_of(issue_token(bytes(32), "viewer")) == "bad_signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg: str) -> None:
    token = craft({"alg": alg, "typ": "JWT"}, CLAIMS, None)
    with pytest.raises(AuthError, match="unsigned tokens") as err:
        verify_token(SECRET, token)
    assert err.value.code == "wrong_algorithm"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "HS512"])
def test_other_algorithms_are_refused(alg: str) -> None:
    # No `cryptography` in this environment: a well-formed RS256 token with a garbage signature
    # is enough, since the algorithm is refused before any signature is looked at.
    token = craft({"alg": alg, "typ": "JWT"}, CLAIMS, b"garbage signature key")
    with pytest.raises(AuthError, match=f"algorithm '{alg}' not accepted") as err:
        verify_token(SECRET, token)
    assert err.value.code == "wrong_algorithm"


def test_hs256_signed_with_a_public_key_is_a_bad_signature() -> None:
    token = craft({"alg": "HS256", "typ": "JWT"}, CLAIMS, PUBLIC_KEY_PEM)
    assert code_of(token) == "bad_signature"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.%%%.sig", "x" * 40])
def test_garbage(token: str) -> None:
    assert code_of(token) in ("missing", "malformed")


@pytest.mark.parametrize(
    "claims",
    [
        {k: v for k, v in CLAIMS.items() if k != "role"},
        {k: v for k, v in CLAIMS.items() if k != "sub"},
        {k: v for k, v in CLAIMS.items() if k != "jti"},
        {**CLAIMS, "role": "root"},
        {**CLAIMS, "accounts": "a1"},
        {**CLAIMS, "sub": ""},
    ],
)
def test_bad_claims(claims: dict[str, object]) -> None:
    assert code_of(craft({"alg": "HS256", "typ": "JWT"}, claims, SECRET)) == "bad_claims"


def test_parse_bearer() -> None:
    assert parse_bearer("Bearer abc.def.ghi") == "abc.def.ghi"
    assert parse_bearer("bearer  abc") == "abc"
    for value in (None, "", "  "):
        with pytest.raises(AuthError) as err:
            parse_bearer(value)
        assert err.value.code == "missing"
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "abc.def.ghi"):
        with pytest.raises(AuthError) as err:
            parse_bearer(value)
        assert err.value.code == "malformed"


# -- roles ------------------------------------------------------------------------------------------

VIEWER = Principal("v", Role.VIEWER, ("a1",), None)
BLIND = Principal("v", Role.VIEWER, (), None)
TRADER = Principal("t", Role.TRADER, ("a1",), None)
TRADERS = Principal("t", Role.TRADER, ("a1", "a3"), None)
EVERY_TRADER = Principal("t", Role.TRADER, ("*",), None)
EVERY_VIEWER = Principal("v", Role.VIEWER, ("*",), None)
ADMIN = Principal("root", Role.ADMIN, ("*",), None)
EVERY = {"a1", "a2", "a3", "*"}


@pytest.mark.parametrize(
    ("principal", "reads", "trades"),
    [
        (BLIND, set(), set()),
        (VIEWER, {"a1"}, set()),
        (EVERY_VIEWER, EVERY, set()),
        (TRADER, {"a1"}, {"a1"}),
        (TRADERS, {"a1", "a3"}, {"a1", "a3"}),
        (EVERY_TRADER, EVERY, EVERY),
        (ADMIN, EVERY, EVERY),
    ],
    ids=["viewer-none", "viewer-a1", "viewer-*", "trader-a1", "trader-a1,a3", "trader-*", "admin"],
)
def test_the_rule(principal: Principal, reads: set[str], trades: set[str]) -> None:
    """Role x account: an account is read (and, by a trader, traded) only through a token naming it."""
    for account in ("a1", "a2", "a3", "*"):
        assert principal.can("read", account) == (account in reads), account
        assert principal.can("trade", account) == (account in trades), account
    assert principal.can("read"), "data of no account (market data) is for every role"
    assert principal.can("trade") == ("*" in trades), "trading without naming the account fails closed"
    assert principal.can("admin") == (principal is ADMIN)


def test_can_coerces_and_refuses_unknown_actions() -> None:
    assert Principal("t", "admin", [], None).can("admin"), "plain strings are coerced"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown action"):
        TRADER.can("delete")


@pytest.mark.parametrize(
    ("principal", "action", "account", "message"),
    [
        (TRADER, "trade", "a2", r"role trader may trade accounts \[a1\], not a2"),
        (TRADER, "trade", None, r"role trader may trade accounts \[a1\] only; name the account"),
        (VIEWER, "trade", "a1", "role viewer may not trade; needs role trader or admin"),
        (TRADER, "admin", None, "role trader may not perform admin actions; needs role admin"),
        (TRADER, "read", "a2", r"role trader may read accounts \[a1\], not a2"),
        (BLIND, "read", "a1", "role viewer may read no accounts, not a1"),
        (TRADERS, "read", "*", r"role trader may read accounts \[a1, a3\], not every account; name the account"),
    ],
)
def test_require_says_what_was_needed(principal: Principal, action: str, account: str | None, message: str) -> None:
    with pytest.raises(PermissionDenied, match=message):
        require(principal, action, account)


def test_require_allows() -> None:
    require(TRADER, "trade", "a1")
    require(VIEWER, "read", "a1")
    require(ADMIN, "admin")


@pytest.mark.parametrize(
    ("principal", "account", "scope"),
    [(TRADER, "", "a1"), (TRADER, "a1", "a1"), (VIEWER, "", "a1"), (TRADERS, "a3", "a3"),
     (EVERY_VIEWER, "", None), (EVERY_VIEWER, "a2", "a2"), (ADMIN, "", None)],
)
def test_read_scope(principal: Principal, account: str, scope: str | None) -> None:
    assert read_scope(principal, account) == scope


def test_read_scope_refuses() -> None:
    with pytest.raises(PermissionDenied, match="not a2"):
        read_scope(TRADER, "a2")
    with pytest.raises(AccountRequired, match="the token allows several"):
        read_scope(TRADERS, "")
    with pytest.raises(PermissionDenied, match="the viewer token names no accounts: it reads market data only"):
        readable(BLIND)
    assert readable(TRADERS) == {"a1", "a3"} and readable(EVERY_TRADER) is None


# -- secret files -----------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_secrets_creates_private_files(tmp_path: Path) -> None:
    home = tmp_path / "state" / "home"
    secret, token = ensure_secrets(home)
    assert mode(home) == 0o700
    assert mode(home / "secret.key") == 0o600 and mode(home / "admin.token") == 0o600
    assert len(secret) == 32 and load_secret(home) == secret
    assert (home / "admin.token").read_text().strip() == token
    assert verify_token(secret, token).role is Role.ADMIN
    assert sorted(p.name for p in home.iterdir()) == ["admin.token", "secret.key"], "no temporary files left"


def test_ensure_secrets_is_stable(tmp_path: Path) -> None:
    assert ensure_secrets(tmp_path) == ensure_secrets(tmp_path)


def test_ensure_secrets_tightens_loose_permissions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret, token = ensure_secrets(tmp_path)
    tmp_path.chmod(0o755)
    (tmp_path / "secret.key").chmod(0o644)
    (tmp_path / "admin.token").chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="tradsys"):
        assert ensure_secrets(tmp_path) == (secret, token)
    assert (mode(tmp_path), mode(tmp_path / "secret.key"), mode(tmp_path / "admin.token")) == (0o700, 0o600, 0o600)
    fixed = [r for r in caplog.records if r.getMessage() == "auth.permissions_fixed"]
    assert len(fixed) == 3


def test_stale_admin_token_is_replaced(tmp_path: Path) -> None:
    ensure_secrets(tmp_path)
    (tmp_path / "secret.key").unlink()
    secret, token = ensure_secrets(tmp_path)
    assert verify_token(secret, token).role is Role.ADMIN
    assert (tmp_path / "admin.token").read_text().strip() == token
    assert mode(tmp_path / "admin.token") == 0o600


def test_load_secret_errors(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="no secret in .* start the daemon once"):
        load_secret(tmp_path)
    (tmp_path / "secret.key").write_text("not hex")
    with pytest.raises(SecretError, match="not 64 hex digits"):
        load_secret(tmp_path)


# -- tradsys auth token -----------------------------------------------------------------------------


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    app = typer.Typer()
    app.add_typer(auth_app, name="auth")
    return CliRunner().invoke(app, ["auth", "token", *args], env=env)


def test_cli_prints_a_token_that_verifies(tmp_path: Path) -> None:
    secret, _ = ensure_secrets(tmp_path)
    result = run("--role", "trader", "--account", "a1", "--account", "a2", "--ttl", "7d", "--home", str(tmp_path))
    assert result.exit_code == 0, result.output
    principal = verify_token(secret, result.stdout.strip())
    assert (principal.role, principal.accounts, principal.subject) == (Role.TRADER, ("a1", "a2"), "cli")


def test_cli_json_and_home_from_env(tmp_path: Path) -> None:
    secret, _ = ensure_secrets(tmp_path)
    result = run("--role", "viewer", "--ttl", "none", "--subject", "grafana", "--json", env={"TRADSYS_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["role"], data["accounts"], data["subject"], data["expires"]) == ("viewer", [], "grafana", None)
    assert verify_token(secret, data["token"]).role is Role.VIEWER


def test_cli_without_secret_exits_4(tmp_path: Path) -> None:
    result = run("--role", "admin", "--home", str(tmp_path))
    assert result.exit_code == 4
    assert f"no secret in {tmp_path} — start the daemon once (`tradsys daemon start`) to create it" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "trader"], "--account: a trader token needs at least one account"),
        (["--role", "trader", "--account", "a1", "--ttl", "soon"], "--ttl: ttl must look like"),
        (["--role", "root"], "'root' is not one of"),
    ],
)
def test_cli_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    ensure_secrets(tmp_path)
    result = run(*args, "--home", str(tmp_path))
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", timedelta(seconds=30)), ("30m", timedelta(minutes=30)), ("1h", timedelta(hours=1)),
     ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)), ("none", None), ("NONE", None)],
)
def test_parse_ttl(text: str, expected: timedelta | None) -> None:
    assert parse_ttl(text) == expected


@pytest.mark.parametrize("text", ["", "0h", "1", "h", "1y", "-1h", "1.5h", "01h"])
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="ttl must look like"):
        parse_ttl(text)
