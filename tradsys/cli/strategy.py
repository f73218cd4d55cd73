"""`tradsys strategy list|start|stop|status`: live strategies in the running daemon, over gRPC.

The daemon is found from HOME/daemon.pid (or `--target host:port`); the token is $TRADSYS_TOKEN,
`--token`, or HOME/admin.token.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from tradsys.daemon import process
from tradsys.daemon.config import resolve_home
from tradsys.engine.strategy import ParamError, parse_assignments
from tradsys.proto import strategy_pb2 as pb
from tradsys.proto import strategy_pb2_grpc as pb_grpc

strategy_app = typer.Typer(help="Run strategies live inside the daemon.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

HomeOpt = Annotated[Path | None, typer.Option("--home", help="State directory (default: $TRADSYS_HOME or ~/.tradsys).")]
TargetOpt = Annotated[str | None, typer.Option("--target", help="Daemon gRPC address (default: from HOME/daemon.pid).")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="Bearer token (default: $TRADSYS_TOKEN or HOME/admin.token).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TYPE_NAMES = {pb.ParamSpec.TYPE_STRING: "string", pb.ParamSpec.TYPE_INT: "int", pb.ParamSpec.TYPE_DECIMAL: "decimal",
              pb.ParamSpec.TYPE_BOOL: "bool", pb.ParamSpec.TYPE_DURATION: "duration"}


def _stub(home: Path | None, target: str | None, token: str | None) -> tuple[pb_grpc.StrategyServiceStub, Any]:
    root = resolve_home(home)
    if target is None:
        info = process.read_pid(root)
        if info is None:
            err.print(f"[red]error:[/] the daemon is not running (home {root}); start it with `tradsys daemon start`")
            raise typer.Exit(3)
        target = info["grpc"]
    token = token or os.environ.get("TRADSYS_TOKEN")
    if token is None:
        try:
            token = (root / "admin.token").read_text().strip()
        except FileNotFoundError:
            err.print(f"[red]error:[/] no token: pass --token or set TRADSYS_TOKEN ({root / 'admin.token'} not found)")
            raise typer.Exit(2) from None
    channel = grpc.insecure_channel(target)
    return pb_grpc.StrategyServiceStub(channel), (("authorization", f"Bearer {token}"),)


def _call(fn: Any, request: Any, metadata: Any) -> Any:
    try:
        return fn(request, metadata=metadata, timeout=10)
    except grpc.RpcError as exc:
        code = exc.code()
        err.print(f"[red]error:[/] {exc.details()} ({code.name if code else 'error'})")
        raise typer.Exit(4 if code is grpc.StatusCode.NOT_FOUND else 2 if code is grpc.StatusCode.INVALID_ARGUMENT
                         else 1) from None


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
def list_kinds(home: HomeOpt = None, target: TargetOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The strategies the daemon can run, with their parameters."""
    stub, md = _stub(home, target, token)
    reply = _call(stub.ListStrategies, pb.ListStrategiesRequest(), md)
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
def start(
    kind: Annotated[str, typer.Argument(help="Strategy name (see `tradsys strategy list`).")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")] = None,
    account: Annotated[str, typer.Option("--account", help="Account to trade for (default: strategy-<id>).")] = "",
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="Symbol(s) to run on (repeatable).")] = None,
    home: HomeOpt = None, target: TargetOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Start a strategy in the daemon. Example: tradsys strategy start market_making --param spread_bps=8"""
    try:
        params = parse_assignments(param)
    except ParamError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    stub, md = _stub(home, target, token)
    reply = _call(stub.StartStrategy, pb.StartStrategyRequest(kind=kind, params=params, account=account,
                                                                symbols=symbol or []), md)
    if as_json:
        typer.echo(json.dumps(_doc(reply.status)))
    else:
        out.print(f"started strategy {reply.status.id} ({reply.status.kind}) for account {reply.status.account}")


@strategy_app.command()
def stop(
    id: Annotated[str, typer.Argument(help="Instance id.")],
    home: HomeOpt = None, target: TargetOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Stop a strategy and cancel its open orders."""
    stub, md = _stub(home, target, token)
    reply = _call(stub.StopStrategy, pb.StopStrategyRequest(id=id), md)
    if as_json:
        typer.echo(json.dumps(_doc(reply.status)))
    else:
        out.print(f"stopped strategy {reply.status.id}")


@strategy_app.command()
def status(
    id: Annotated[str | None, typer.Argument(help="Instance id (default: all).")] = None,
    home: HomeOpt = None, target: TargetOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """State, position and PnL of one instance, or of all of them."""
    stub, md = _stub(home, target, token)
    if id is None:
        statuses = list(_call(stub.ListRunning, pb.ListRunningRequest(), md).strategies)
    else:
        statuses = [_call(stub.GetStrategyStatus, pb.GetStrategyStatusRequest(id=id), md).status]
    if as_json:
        typer.echo(json.dumps([_doc(s) for s in statuses] if id is None else _doc(statuses[0])))
    else:
        out.print(_status_table(statuses))
