"""The `tradsys` command: one Typer app, one module per verb group."""

import os
from pathlib import Path
from typing import Annotated

import typer

from tradsys.cli import account, market, replay, tail, watch
from tradsys.cli.alerts import alerts_app
from tradsys.cli.auth import auth_app
from tradsys.cli.backtest import backtest_app
from tradsys.cli.client import target
from tradsys.cli.daemon import daemon_app
from tradsys.cli.market import market_app
from tradsys.cli.order import order_app
from tradsys.cli.risk import risk_app
from tradsys.cli.strategy import strategy_app

app = typer.Typer(
    name="tradsys",
    help="TradSys: a fast, exact, safe trading venue, risk engine and backtester.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command(name="replay")(replay.replay)
app.add_typer(daemon_app, name="daemon")
app.add_typer(auth_app, name="auth")
app.add_typer(order_app, name="order")
app.add_typer(market_app, name="market")
app.add_typer(risk_app, name="risk")
app.add_typer(backtest_app, name="backtest")
app.add_typer(strategy_app, name="strategy")
app.add_typer(alerts_app, name="alerts")
app.command(name="book")(market.book)
app.command(name="trades")(market.trades)
app.command(name="bars")(market.bars)
app.command(name="fills")(account.fills)
app.command(name="positions")(account.positions)
app.command(name="tail")(tail.tail)
app.command(name="watch")(watch.watch)


@app.callback()
def _root(
    host: Annotated[str | None, typer.Option("--host", help="Daemon host (default 127.0.0.1).")] = None,
    grpc_port: Annotated[
        int | None, typer.Option("--grpc-port", min=1, max=65535, help="Daemon gRPC port (default: from HOME/daemon.pid, else 50051).")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="TRADSYS_TOKEN", show_envvar=True, help="API token (default: HOME/admin.token).")
    ] = None,
    home: Annotated[Path | None, typer.Option("--home", help="State directory (default: $TRADSYS_HOME or ~/.tradsys).")] = None,
    ca: Annotated[
        Path | None, typer.Option("--ca", envvar="TRADSYS_CA", show_envvar=True,
                                  help="PEM certificate(s) to verify a daemon serving TLS (default: the local daemon's own).")
    ] = None,
) -> None:
    """TradSys: a fast, exact, safe trading venue, risk engine and backtester."""
    target.host, target.port, target.token, target.home, target.ca = host, grpc_port, token, home, ca
    if home is not None:
        # `daemon` and `auth` read TRADSYS_HOME when their own --home is not given
        os.environ["TRADSYS_HOME"] = str(home.expanduser().absolute())


def main() -> None:
    app()
