"""`tradsys strategy list|start|stop|status`: live strategies in the running daemon, over gRPC.

The daemon, token and exit codes are the CLI's usual ones (`tradsys.cli.client`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from tradsys.cli.client import Client
from tradsys.cli.output import handle_errors
from tradsys.engine.strategy import ParamError, parse_assignments
from tradsys.proto import strategy_pb2 as pb

strategy_app = typer.Typer(help="Run strategies live inside the daemon.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TYPE_NAMES = {pb.ParamSpec.TYPE_STRING: "string", pb.ParamSpec.TYPE_INT: "int", pb.ParamSpec.TYPE_DECIMAL: "decimal",
              pb.ParamSpec.TYPE_BOOL: "bool", pb.ParamSpec.TYPE_DURATION: "duration"}


def _doc(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _status_table(statuses: list[Any], title: str = "Strategies") -> Table:
    table = Table(title=title)
    for col in ("id", "kind", "state", "account", "symbols", "position", "pnl", "params"):
        table.add_column(col)
    for s in statuses:
        state = pb.StrategyStatus.State.Name(s.state).removeprefix("STATE_").lower()
        colour = {"running": "green", "failed": "red"}.get(state, "yellow")
        table.add_row(s.id, s.kind, f"[{colour}]{state}[/]" + (f" {s.error}" if s.error else ""), s.account,
                      ",".join(s.symbols), s.position, s.pnl, " ".join(f"{k}={v}" for k, v in sorted(s.params.items())))
    return table


@strategy_app.command("list")
@handle_errors
def list_kinds(as_json: JsonOpt = False) -> None:
    """The strategies the daemon can run, with their parameters."""
    client = Client()
    reply = client.call(client.strategy.ListStrategies, pb.ListStrategiesRequest())
    if as_json:
        typer.echo(json.dumps(_doc(reply)))
        return
    table = Table(title="Strategies")
    for col in ("strategy", "parameter", "type", "default", "description"):
        table.add_column(col)
    for kind in reply.kinds:
        table.add_row(f"[bold]{kind.kind}[/]", "", "", "", kind.description)
        for p in kind.params:
            table.add_row("", p.name, TYPE_NAMES.get(p.type, "?"), p.default_value or "(required)", p.description)
    out.print(table)


@strategy_app.command()
@handle_errors
def start(
    kind: Annotated[str, typer.Argument(help="Strategy name (see `tradsys strategy list`).")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")] = None,
    account: Annotated[str, typer.Option("--account", help="Account to trade for (default: strategy-<id>).")] = "",
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="Symbol(s) to run on (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a strategy in the daemon. Example: tradsys strategy start market_making --param spread_bps=8"""
    try:
        params = parse_assignments(param)
    except ParamError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    client = Client()
    reply = client.call(client.strategy.StartStrategy, pb.StartStrategyRequest(kind=kind, params=params, account=account,
                                                                symbols=symbol or []))
    if as_json:
        typer.echo(json.dumps(_doc(reply.status)))
    else:
        out.print(f"started strategy {reply.status.id} ({reply.status.kind}) for account {reply.status.account}")


@strategy_app.command()
@handle_errors
def stop(
    id: Annotated[str, typer.Argument(help="Instance id.")],
    as_json: JsonOpt = False,
) -> None:
    """Stop a strategy and cancel its open orders."""
    client = Client()
    reply = client.call(client.strategy.StopStrategy, pb.StopStrategyRequest(id=id))
    if as_json:
        typer.echo(json.dumps(_doc(reply.status)))
    else:
        out.print(f"stopped strategy {reply.status.id}")


@strategy_app.command()
@handle_errors
def status(
    id: Annotated[str | None, typer.Argument(help="Instance id (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """State, position and PnL of one instance, or of all of them."""
    client = Client()
    if id is None:
        statuses = list(client.call(client.strategy.ListRunning, pb.ListRunningRequest()).strategies)
    else:
        statuses = [client.call(client.strategy.GetStrategyStatus, pb.GetStrategyStatusRequest(id=id)).status]
    if as_json:
        typer.echo(json.dumps([_doc(s) for s in statuses] if id is None else _doc(statuses[0])))
    else:
        out.print(_status_table(statuses))
