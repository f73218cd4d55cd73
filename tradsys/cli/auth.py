"""`tradsys auth token`: mint API tokens offline from the daemon's secret in TRADSYS_HOME."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from tradsys.daemon.auth import Role, SecretError, issue_token, load_secret, token_accounts, verify_token
from tradsys.durations import DurationError, grammar, parse_seconds
from tradsys.home import resolve_home

EXIT_USAGE = 2
EXIT_NO_SECRET = 4

auth_app = typer.Typer(help="Issue API tokens signed with the daemon's secret.", no_args_is_help=True)


def parse_ttl(text: str) -> timedelta | None:
    """"30m", "1h", "7d", "2w" (a whole count of a unit, see `tradsys.durations`) -> timedelta;
    "none" -> None (never expires)."""
    if text.strip().lower() == "none":
        return None
    try:
        seconds = parse_seconds(text.strip(), whole=True)
    except DurationError:
        seconds = 0.0
    if seconds <= 0:
        raise ValueError(f"ttl must look like 30m, 1h, 7d, 2w or none: {grammar(whole=True)}, above zero; got {text!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"ttl {text!r} is longer than a timestamp can reach") from None


def _fail(code: int, message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@auth_app.command()
def token(
    role: Annotated[Role, typer.Option("--role", help="viewer reads its accounts; trader also trades them; admin does all.")],
    account: Annotated[
        list[str] | None,
        typer.Option("--account", help="Account a viewer reads, or a trader reads and trades (repeatable; "
                                       "'*' = all). A viewer token naming none reads market data only."),
    ] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime: 30m, 1h, 7d, 2w, or none.")] = "1h",
    subject: Annotated[str, typer.Option("--subject", help="Who the token is for (its sub claim).")] = "cli",
    home: Annotated[Path | None, typer.Option("--home", help="State directory (default: $TRADSYS_HOME or ~/.tradsys).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print token, role, accounts and expiry as JSON.")] = False,
) -> None:
    """Print a new token for the daemon's API.

    Example: export TRADSYS_TOKEN=$(tradsys auth token --role trader --account a1 --ttl 7d)
    """
    try:
        lifetime = parse_ttl(ttl)
    except ValueError as exc:
        raise _fail(EXIT_USAGE, f"--ttl: {exc}") from None
    try:
        accounts = token_accounts(role, account or ())
    except ValueError as exc:
        raise _fail(EXIT_USAGE, f"--account: {exc}") from None
    try:
        secret = load_secret(resolve_home(home))
    except SecretError as exc:
        raise _fail(EXIT_NO_SECRET, str(exc)) from None
    issued = issue_token(secret, role, accounts, lifetime, subject)
    if not as_json:
        typer.echo(issued)
        return
    principal = verify_token(secret, issued)
    expires = principal.expires.isoformat().replace("+00:00", "Z") if principal.expires else None
    typer.echo(
        json.dumps(
            {
                "token": issued,
                "role": principal.role.value,
                "subject": principal.subject,
                "accounts": list(principal.accounts),
                "expires": expires,
            }
        )
    )
