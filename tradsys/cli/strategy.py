"""`tradsys strategy list|start|stop|status`: live strategies in the running daemon, over gRPC.

The daemon, token and exit codes are the CLI's usual ones (`tradsys.cli.client`).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from google.protobuf.json_format import MessageToDict

from tradsys.cli.client import EXIT_USAGE, Client, CliError
from tradsys.cli.complete import strategies, symbols
from tradsys.cli.output import JsonOption, console, emit_json, handle_errors, table
from tradsys.proto import strategy_pb2 as pb

strategy_app = typer.Typer(help="Run strategies live inside the daemon.", no_args_is_help=True)

JsonOpt = Annotated[bool, JsonOption]
TYPE_NAMES = {pb.ParamSpec.TYPE_STRING: "string", pb.ParamSpec.TYPE_INT: "int", pb.ParamSpec.TYPE_DECIMAL: "decimal",
              pb.ParamSpec.TYPE_BOOL: "bool", pb.ParamSpec.TYPE_DURATION: "duration"}


def _doc(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


STATUS_COLUMNS = ["id", "kind", "state", "account", "symbols", "position", "pnl", "params"]
STATUS_OPTIONAL = ["params", "symbols", "account"]
"""Left out, in this order, when a terminal is too narrow: ids and kinds are never cut short."""


def _status_rows(statuses: list[Any]) -> list[list[str]]:
    rows = []
    for s in statuses:
        state = pb.StrategyStatus.State.Name(s.state).removeprefix("STATE_").lower()
        colour = {"running": "green", "failed": "red"}.get(state, "yellow")
        rows.append([s.id, s.kind, f"[{colour}]{state}[/]" + (f" {s.error}" if s.error else ""), s.account,
                     ",".join(s.symbols), s.position, s.pnl, " ".join(f"{k}={v}" for k, v in sorted(s.params.items()))])
    return rows


@strategy_app.command("list")
@handle_errors
def list_kinds(as_json: JsonOpt = False) -> None:
    """The strategies the daemon can run, with their parameters.

    Example: tradsys strategy list
    """
    client = Client()
    reply = client.call(client.strategy.ListStrategies, pb.ListStrategiesRequest())
    if as_json:
        emit_json(_doc(reply))
        return
    rows: list[list[str]] = []
    for kind in reply.kinds:
        rows.append([f"[bold]{kind.kind}[/]", "", "", "", kind.description])
        rows += [["", p.name, TYPE_NAMES.get(p.type, "?"), p.default_value or "(required)", p.description]
                 for p in kind.params]
    console.print(table(None, ["strategy", "parameter", "type", "default", "description"], rows))


@strategy_app.command()
@handle_errors
def start(
    kind: Annotated[str, typer.Argument(help="Strategy name (see `tradsys strategy list`).", autocompletion=strategies)],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")] = None,
    account: Annotated[str, typer.Option("--account", help="Account to trade for (default: strategy-<id>).")] = "",
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="Symbol(s) to run on (repeatable).",
                                                     autocompletion=symbols)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a strategy in the daemon; a parameter it does not take, or a bad value, is a usage error (exit 2).

    Example: tradsys strategy start market_making --param spread_bps=8 --param quantity=0.01
    """
    from tradsys.engine.strategy import ParamError, parse_assignments  # loads polars: only `start` needs it

    try:
        params = parse_assignments(param)
    except ParamError as exc:
        raise CliError(EXIT_USAGE, f"usage: {exc}") from None
    client = Client()
    reply = client.call(client.strategy.StartStrategy, pb.StartStrategyRequest(kind=kind, params=params, account=account,
                                                                symbols=symbol or []))
    if as_json:
        emit_json(_doc(reply.status))
    else:
        console.print(f"started strategy {reply.status.id} ({reply.status.kind}) for account {reply.status.account}",
                      soft_wrap=True)


@strategy_app.command()
@handle_errors
def stop(
    id: Annotated[str, typer.Argument(help="Instance id (see `tradsys strategy status`).")],
    as_json: JsonOpt = False,
) -> None:
    """Stop a strategy and cancel its open orders.

    Example: tradsys strategy stop 1
    """
    client = Client()
    reply = client.call(client.strategy.StopStrategy, pb.StopStrategyRequest(id=id))
    if as_json:
        emit_json(_doc(reply.status))
    else:
        console.print(f"stopped strategy {reply.status.id}")


@strategy_app.command()
@handle_errors
def status(
    id: Annotated[str | None, typer.Argument(help="Instance id (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """State, position and PnL of one instance, or of all of them.

    Example: tradsys strategy status
    """
    client = Client()
    if id is None:
        statuses = list(client.call(client.strategy.ListRunning, pb.ListRunningRequest()).strategies)
    else:
        statuses = [client.call(client.strategy.GetStrategyStatus, pb.GetStrategyStatusRequest(id=id)).status]
    if as_json:
        emit_json([_doc(s) for s in statuses] if id is None else _doc(statuses[0]))
    elif not statuses:
        console.print("no strategies running (start one with `tradsys strategy start`)")
    else:
        console.print(table(None, STATUS_COLUMNS, _status_rows(statuses), ["position", "pnl"], STATUS_OPTIONAL))
