"""The `tradsys` command: one Typer app, one module per verb group, each imported only when used.

A command imports its own module and nothing else (`order place` never loads polars or the
backtester), so a script that runs the CLI in a loop pays for one command, not for all of them.
`tradsys --help` imports every module to list them with their own help.
"""

import importlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_errors
from typer.core import TyperGroup
from typer.exceptions import Abort
from typer.models import CommandInfo

from tradsys.cli.client import target

COMMANDS: dict[str, str] = {
    "replay": "tradsys.cli.replay:replay",
    "daemon": "tradsys.cli.daemon:daemon_app",
    "auth": "tradsys.cli.auth:auth_app",
    "order": "tradsys.cli.order:order_app",
    "market": "tradsys.cli.market:market_app",
    "risk": "tradsys.cli.risk:risk_app",
    "backtest": "tradsys.cli.backtest:backtest_app",
    "strategy": "tradsys.cli.strategy:strategy_app",
    "alerts": "tradsys.cli.alerts:alerts_app",
    "book": "tradsys.cli.market:book",
    "trades": "tradsys.cli.market:trades",
    "bars": "tradsys.cli.market:bars",
    "fills": "tradsys.cli.account:fills",
    "positions": "tradsys.cli.account:positions",
    "tail": "tradsys.cli.tail:tail",
    "watch": "tradsys.cli.watch:watch",
    "data": "tradsys.cli.data:data_app",
    "signals": "tradsys.cli.signals:signals_app",
}
"""Each top-level command, in help order: `module:attribute`, a Typer group or a command function."""


class LazyGroup(TyperGroup):
    """The root group: builds a command from its module the first time it is asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = self.commands.get(cmd_name)
        if found is not None or cmd_name not in COMMANDS:
            return found
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        obj = getattr(importlib.import_module(module), attribute)
        if isinstance(obj, typer.Typer):
            command = typer.main.get_group(obj)
            command.name = cmd_name
        else:
            command = typer.main.get_command_from_info(
                CommandInfo(name=cmd_name, callback=obj), pretty_exceptions_short=True, rich_markup_mode=self.rich_markup_mode)
        self.commands[cmd_name] = command
        return command

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Runs the command line; a usage error is one plain line on stderr and exit 2 (not a box
        of help text), whichever command it comes from."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            code = exc.exit_code  # the help itself was printed when the error was made
        except click_errors.ClickException as exc:
            sys.stderr.write(usage_line(exc, argv) + "\n")
            code = exc.exit_code
        except Abort:
            sys.stderr.write("Aborted!\n")
            code = 1
        sys.exit(code if isinstance(code, int) else 0)


NEGATIVE = re.compile(r"-\d")


def usage_line(exc: click_errors.ClickException, argv: list[str]) -> str:
    """A parsing error as one line: what is wrong, and where the command's help is."""
    if isinstance(exc, click_errors.NoSuchOption):
        negative = next((a for a in argv if NEGATIVE.match(a) and a.startswith(exc.option_name)), None)
        if negative is not None:
            return f"usage: {negative} is negative; quantities and prices are positive numbers"
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"{'usage' if isinstance(exc, click_errors.UsageError) else 'error'}: {message}{where}"


app = typer.Typer(
    name="tradsys",
    cls=LazyGroup,
    help="TradSys: a fast, exact, safe trading venue, risk engine and backtester.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
