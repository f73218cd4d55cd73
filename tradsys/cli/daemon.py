"""`tradsys daemon start|stop|status`."""

import faulthandler
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tradsys.daemon import process
from tradsys.daemon.alerts import RuleError
from tradsys.daemon.config import ConfigError, load_config
from tradsys.daemon.logs import setup_logging

daemon_app = typer.Typer(help="Run and control the TradSys daemon.", no_args_is_help=True)

HomeOption = Annotated[Path | None, typer.Option("--home", help="State directory (default: $TRADSYS_HOME or ~/.tradsys).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _fail(code: int, message: str, as_json: bool) -> typer.Exit:
    """One line on stderr (and under --json an error document on stdout); the Exit to raise."""
    if as_json:
        typer.echo(json.dumps({"error": {"exit_code": code, "message": message}}))
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _config(config: Path | None, overrides: dict[str, Any], as_json: bool = False) -> Any:
    try:
        return load_config(config, os.environ, {k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise _fail(2, str(exc), as_json) from None


@daemon_app.command()
def start(
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background; logs go to HOME/logs/daemon.log.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file (default: HOME/config.toml).")] = None,
    home: HomeOption = None,
    grpc_host: Annotated[str | None, typer.Option(help="gRPC listen address.")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (default 50051).")] = None,
    http_host: Annotated[str | None, typer.Option(help="HTTP/WebSocket listen address.")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP/WebSocket port (default 8080).")] = None,
    log_format: Annotated[str | None, typer.Option(help="text or json.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
    simulate: Annotated[bool | None, typer.Option("--simulate/--no-simulate", help="Run the embedded simulated market.")] = None,
    replay_data: Annotated[Path | None, typer.Option(help="Drive the market from a parquet/CSV file of trades or bars.")] = None,
    replay_speed: Annotated[float | None, typer.Option(help="Replay speed factor for --replay-data.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated market.")] = None,
    durability: Annotated[str | None, typer.Option(help="fsync (survives power loss, default) or process (survives a killed daemon; faster).")] = None,
    feed: Annotated[list[str] | None, typer.Option("--feed", help="Paper-trade a real market: EXCHANGE:SYMBOL, "
                                                                  "e.g. binance:BTC/USDT (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="With --detach, print the started daemon as JSON; in the foreground, log JSON lines.")] = False,
) -> None:
    """Start the daemon: a live venue with a simulated market, gRPC on 50051, HTTP/WebSocket on 8080.
    In the foreground (what `make run` does) until Ctrl-C, or in the background with --detach.

    Example: tradsys daemon start --detach
    """
    cfg = _config(config, {
        "home": home, "grpc_host": grpc_host, "grpc_port": grpc_port, "http_host": http_host, "http_port": http_port,
        "log_format": log_format or ("json" if as_json else None), "log_level": log_level, "simulate": simulate,
        "replay_data": replay_data, "replay_speed": replay_speed, "sim_seed": seed, "durability": durability,
        "feeds": feed or None,
    }, as_json)
    running = process.read_pid(cfg.home)
    if running is not None:
        raise _fail(1, f"the daemon is already running (pid {running['pid']}, gRPC {running['grpc']}): "
                       f"`tradsys daemon status` shows it, `tradsys daemon stop` stops it", as_json)
    if detach:
        argv = [a for a in sys.argv[3:] if a not in ("--detach", "-d", "--json")]
        try:
            info = process.detach(cfg.home, argv)
        except RuntimeError as exc:
            raise _fail(1, str(exc), as_json) from None
        if as_json:
            typer.echo(json.dumps({"started": True, **info}))
        else:
            typer.echo(f"daemon started: pid {info['pid']}, gRPC {info['grpc']}, HTTP {info['http']}")
        return
    setup_logging(cfg.log_format, cfg.log_level)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: every thread's stack on stderr
    needed = cfg.http_max_connections * 2 + 1024
    files = process.raise_file_limit(needed)
    if files < needed:
        logging.getLogger("tradsys.daemon").warning("daemon.file_limit", extra={"fields": {
            "open_files": files, "needed": needed,
            "advice": "raise the hard limit (ulimit -Hn) or lower [http] max_connections"}})
    from tradsys.daemon.app import Daemon
    from tradsys.daemon.store import CorruptJournal
    from tradsys.exchanges import ExchangeFailure

    daemon = Daemon(cfg)
    try:
        daemon.start()
    except (OSError, ConfigError, RuleError, CorruptJournal, ExchangeFailure) as exc:
        logging.getLogger("tradsys.daemon").error("daemon.start_failed", extra={"fields": {"error": str(exc)}})
        raise _fail(1, str(exc), as_json) from None
    process.write_pid(cfg.home, f"{cfg.grpc_host}:{daemon.grpc_port}", f"{cfg.http_host}:{daemon.http_port}",
                      cfg.tls_cert)
    try:
        daemon.wait()
    finally:
        process.remove_pid(cfg.home)


@daemon_app.command()
def stop(home: HomeOption = None, as_json: JsonOpt = False) -> None:
    """Stop the daemon gracefully (SIGTERM: stop accepting, flush, close).

    Example: tradsys daemon stop
    """
    cfg = _config(None, {"home": home}, as_json)
    info = process.read_pid(cfg.home)
    if info is None:
        typer.echo(json.dumps({"stopped": False, "running": False}) if as_json else "daemon not running")
        return
    if not process.terminate(info["pid"]):
        raise _fail(1, f"pid {info['pid']} did not stop within 20s", as_json)
    typer.echo(json.dumps({"stopped": True, "running": False, "pid": info["pid"]}) if as_json
               else f"daemon stopped (pid {info['pid']})")


@daemon_app.command()
def status(home: HomeOption = None, as_json: JsonOpt = False) -> None:
    """Is the daemon running, and is it healthy? Exit code 3 when it is not running.

    Example: tradsys daemon status --json
    """
    cfg = _config(None, {"home": home}, as_json)
    info = process.read_pid(cfg.home)
    report = process.health(info["http"], tls_cert=info.get("tls_cert")) if info is not None else None
    serving = process.grpc_health(info["grpc"], tls_cert=info.get("tls_cert")) if info is not None else None
    doc = {"running": info is not None, **(info or {}), "health": report, "grpc_health": serving}
    if as_json:
        typer.echo(json.dumps(doc))
    elif info is None:
        typer.echo(f"daemon not running (home {cfg.home})")
    else:
        table = Table(show_header=False, box=None)
        table.add_row("pid", str(info["pid"]))
        table.add_row("gRPC", info["grpc"])
        table.add_row("HTTP", info["http"])
        table.add_row("gRPC health", f"[{'green' if serving == 'SERVING' else 'red'}]{serving}[/]")
        if report is None:
            table.add_row("health", "[red]no answer[/]")
        else:
            colour = "green" if report["status"] == "ok" else "yellow"
            table.add_row("status", f"[{colour}]{report['status']}[/]")
            table.add_row("uptime", f"{report['uptime_seconds']:.0f}s")
            for key, value in report["components"].items():
                table.add_row(key.replace("_", " "), str(value))
        Console().print(table)
    if info is None:
        raise typer.Exit(3)
