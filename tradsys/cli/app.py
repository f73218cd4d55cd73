"""The `tradsys` command: one Typer app, one module per verb group."""

import typer

from tradsys.cli import replay
from tradsys.cli.auth import auth_app
from tradsys.cli.daemon import daemon_app

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


@app.callback()
def _root() -> None:
    """TradSys: a fast, exact, safe trading venue, risk engine and backtester."""


def main() -> None:
    app()
