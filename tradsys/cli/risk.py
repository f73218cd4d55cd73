"""`tradsys risk show|set|halt|resume|kill`: limits and the venue's brakes (changes need admin)."""

from enum import Enum
from typing import Annotated, Any

import typer

from tradsys.cli.client import Client
from tradsys.cli.complete import symbols
from tradsys.cli.output import JsonOption, coloured, console, emit_json, handle_errors, table, to_dict, when
from tradsys.proto import risk_pb2 as pb

risk_app = typer.Typer(help="Risk limits, halts, circuit breakers and the kill switch.", no_args_is_help=True)


class Switch(str, Enum):
    on = "on"
    off = "off"


def state_rows(symbols: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for s in symbols:
        breaker = s["circuit_breaker"] or {}
        tripped = breaker.get("state") == "tripped"
        rows.append([
            s["symbol"],
            coloured(f"halted: {s['halt_reason']}", "red") if s["halted"] else coloured("trading", "green"),
            coloured(f"tripped: {breaker.get('reason', '')}", "red") if tripped else "armed",
            when(breaker.get("resumes_ns") or 0) if tripped else "",
        ])
    return rows


def kill_text(kill: dict[str, Any]) -> str:
    if kill["on"]:
        return coloured(f"ON ({kill['reason']}, since {when(kill['changed_ns'])})", "bold red")
    return coloured("off", "green")


@risk_app.command()
@handle_errors
def show(
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="Only limits for this symbol.")] = None,
    account: Annotated[str | None, typer.Option("--account", "-a", help="Only limits for this account.")] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Show the kill switch, each symbol's halt and circuit breaker, and the limits in force.

    Example: tradsys risk show --symbol BTC-USD
    """
    client = Client()
    state = to_dict(client.call(client.risk.GetRiskState, pb.GetRiskStateRequest()))
    limits = [to_dict(x) for x in client.call(
        client.risk.GetLimits, pb.GetLimitsRequest(account=account or "", symbol=(symbol or "").upper())).limits]
    if as_json:
        emit_json({"kill_switch": state["kill_switch"], "symbols": state["symbols"], "limits": limits})
        return
    console.print(f"kill switch: {kill_text(state['kill_switch'])}")
    console.print(table(None, ["symbol", "trading", "breaker", "resumes"], state_rows(state["symbols"])))
    console.print(table("\nlimits", ["key", "value", "account", "symbol"], [
        [x["key"], x["value"], x["account"] or "*", x["symbol"] or "*"] for x in limits
    ], ["value"]))


@risk_app.command("set")
@handle_errors
def set_(
    key: Annotated[str, typer.Argument(help="max_order_notional, max_order_qty, max_position, price_band_pct, ...")],
    value: Annotated[str, typer.Argument(help="Decimal value; 'none' lifts the limit, 'default' restores it.")],
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="Only for this symbol.")] = None,
    account: Annotated[str | None, typer.Option("--account", "-a", help="Only for this account.")] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Set a pre-trade risk limit (admin), globally or for one account and/or symbol.

    Example: tradsys risk set max_order_notional 250000 --symbol BTC-USD
    """
    client = Client()
    limit = pb.RiskLimit(key=key, value=value, account=account or "", symbol=(symbol or "").upper())
    stored = [to_dict(x) for x in client.call(client.risk.SetLimits, pb.SetLimitsRequest(limits=[limit])).limits]
    if as_json:
        emit_json({"limits": stored})
        return
    for x in stored:
        scope = ", ".join(f"{k} {x[k]}" for k in ("account", "symbol") if x[k]) or "global"
        console.print(f"{x['key']} = {x['value']} ({scope})")


def _print_state(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(state)
    else:
        console.print(table(None, ["symbol", "trading", "breaker", "resumes"], state_rows([state])))


@risk_app.command()
@handle_errors
def halt(
    symbol: Annotated[str, typer.Argument(help="Instrument to stop.", autocompletion=symbols)],
    reason: Annotated[str, typer.Option("--reason", help="Shown to everyone who asks why.")] = "manual",
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Halt matching in one symbol until `risk resume` (admin).

    Example: tradsys risk halt BTC-USD --reason "bad prints"
    """
    client = Client()
    reply = client.call(client.risk.Halt, pb.HaltRequest(symbol=symbol.upper(), reason=reason))
    _print_state(to_dict(reply.state), as_json)


@risk_app.command()
@handle_errors
def resume(
    symbol: Annotated[str, typer.Argument(help="Instrument to resume.", autocompletion=symbols)],
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Lift a halt (and reset a tripped circuit breaker) (admin).

    Example: tradsys risk resume BTC-USD
    """
    client = Client()
    reply = client.call(client.risk.Resume, pb.ResumeRequest(symbol=symbol.upper()))
    _print_state(to_dict(reply.state), as_json)


@risk_app.command()
@handle_errors
def kill(
    switch: Annotated[Switch, typer.Argument(help="on: reject every new order venue-wide; off: trade again.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the switch).")] = "manual",
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Flip the venue-wide kill switch (admin).

    Example: tradsys risk kill on --reason "runaway strategy"
    """
    client = Client()
    reply = client.call(client.risk.SetKillSwitch, pb.SetKillSwitchRequest(on=switch is Switch.on, reason=reason))
    state = to_dict(reply.kill_switch)
    if as_json:
        emit_json(state)
    else:
        console.print(f"kill switch: {kill_text(state)}")
