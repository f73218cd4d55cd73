"""`tradsys data download`: history from a real exchange (through ccxt) into a bars or trades file.

ccxt and polars are imported when the command runs, not when the CLI starts.
Exit codes beyond the CLI's own (0 ok, 2 usage): 5 the exchange refused the request (unknown
exchange, symbol or timeframe), 6 the exchange was not reachable, 7 any other exchange error,
130 interrupted. A download that stops early keeps what it fetched and says where it stopped.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from tradsys.durations import DurationError, grammar, parse_ns

EXIT_USAGE = 2
EXIT_CODES = {"refused": 5, "unreachable": 6, "exchange": 7, "interrupted": 130}
"""Exit code for each kind of failure (`ExchangeFailure.kind`, or an interrupted run)."""

data_app = typer.Typer(help="Market data from real exchanges (ccxt): history downloads.", no_args_is_help=True)


def parse_time(text: str, now_ms: int) -> int:
    """Milliseconds since the epoch from an ISO date or time (UTC unless it names a zone), "now",
    or a duration meaning that long ago ("7d", "12h")."""
    value = text.strip()
    if value.lower() == "now":
        return now_ms
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            return now_ms - parse_ns(value) // 1_000_000
        except DurationError:
            raise ValueError(f"{text!r} is not a time: expected an ISO date or time such as 2024-01-01 or "
                             f"2024-01-01T12:00:00Z, 'now', or a duration ago ({grammar()})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _usage(message: str) -> typer.Exit:
    typer.echo(f"usage: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


@data_app.command()
def download(
    exchange: Annotated[str, typer.Argument(help="ccxt exchange id: binance, kraken, coinbase, ...")],
    symbol: Annotated[str, typer.Argument(help="Pair as BTC/USDT or BTC-USDT (files use BTC-USDT).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write or resume: .parquet or .csv.")],
    since: Annotated[str, typer.Option("--since", help="Start: 2024-01-01, 2024-01-01T12:00Z, or 7d (ago).")],
    until: Annotated[str, typer.Option("--until", help="End (exclusive), same forms; default now.")] = "now",
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="Bar length as the exchange names it (1m, 1h, 1d).")] = "1m",
    trades: Annotated[bool, typer.Option("--trades", help="Download public trades instead of bars.")] = False,
    api_url: Annotated[str | None, typer.Option("--api-url", help="Other REST endpoint (testnet, proxy): its "
                                                                   "scheme, host and port replace the exchange's.")] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Retries of a page when the network fails.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="No progress bar; print a summary document.")] = False,
) -> None:
    """Download OHLCV bars (or --trades) into FILE; run it again to append what is missing.

    Example: tradsys data download binance BTC/USDT --since 2024-01-01 --out btc_1m.parquet
    """
    now_ms = int(time.time() * 1000)
    try:
        since_ms, until_ms = parse_time(since, now_ms), parse_time(until, now_ms)
    except ValueError as exc:
        raise _usage(str(exc)) from None
    if until_ms <= since_ms:
        raise _usage(f"--until ({until}) must be after --since ({since})")

    from tradsys.exchanges.connect import load_market, make_exchange
    from tradsys.exchanges.download import Download, Request
    from tradsys.exchanges.errors import ExchangeFailure
    from tradsys.exchanges.history_file import HistoryFileError

    try:
        client = make_exchange(exchange, api_url=api_url)
        market = load_market(client, symbol)
        if not trades and timeframe not in (client.timeframes or {}):
            known = ", ".join(client.timeframes or {}) or "none"
            raise ExchangeFailure("refused", f"{client.id} has no timeframe {timeframe!r} (it has: {known})")
        request = Request("trades" if trades else "bars", market["symbol"], since_ms, until_ms, out,
                          timeframe=timeframe, retries=retries)
        job = Download(client, request)
    except ExchangeFailure as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(EXIT_CODES[exc.kind]) from None
    except HistoryFileError as exc:
        raise _usage(str(exc)) from None

    if as_json or not sys.stderr.isatty():
        summary = job.run()
    else:
        summary = _with_progress_bar(job, f"{job.symbol} {'trades' if trades else timeframe}")
    _report(summary, as_json)


def _with_progress_bar(job: Any, label: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=1)
        job.progress = lambda done, total: bar.update(task, completed=done, total=total)
        return job.run()


def _report(summary: Any, as_json: bool) -> None:
    unit = "trades" if summary.kind == "trades" else "bars"
    if as_json:
        sys.stdout.write(json.dumps(summary.as_dict()) + "\n")
    elif summary.rows:
        typer.echo(f"{summary.symbol}: {summary.rows_added:,} {unit} added, {summary.rows:,} in {summary.out} "
                   f"({summary.first} .. {summary.last})")
    else:
        typer.echo(f"{summary.symbol}: no {unit} in that range")
    if summary.error_kind is None:
        return
    kept = (f"kept {summary.rows:,} {unit} in {summary.out}; run the same command again to resume"
            if summary.rows else "nothing written")
    typer.echo(f"error: {summary.error} (stopped at {summary.stopped_at}; {kept})", err=True)
    raise typer.Exit(EXIT_CODES[summary.error_kind])
