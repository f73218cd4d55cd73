"""`tradsys watch SYMBOL`: a full-screen live view of one market and your part in it.

Built on rich's Live in the alternate screen: the view is redrawn in place several times a
second (no clear, so no flicker) at the terminal's current size. Keys: q quits, tab / shift-tab
cycle symbols, 1-9 pick one. Data comes from `watch_feed.Feed`, which reconnects by itself.
"""

import os
import select
import sys
import termios
import time
import tty
from contextlib import contextmanager
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from tradsys.cli.client import EXIT_USAGE, Client, CliError, target
from tradsys.cli.complete import symbols
from tradsys.cli.market import INTERVALS
from tradsys.cli.order import AccountOption
from tradsys.cli.output import JsonOption, emit_line, handle_errors
from tradsys.cli.watch_feed import Feed
from tradsys.cli.watch_view import json_state, render
from tradsys.proto import marketdata_pb2 as md

FPS = 8


@contextmanager
def _keys() -> Iterator[bool]:
    """cbreak mode on a terminal stdin (keys arrive one by one, Ctrl-C still works); False if none."""
    if not sys.stdin.isatty():
        yield False
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_keys(timeout: float) -> str:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        return ""
    return os.read(sys.stdin.fileno(), 64).decode(errors="ignore")


def _next_symbol(keys: str, symbols: list[str], current: str) -> str | None:
    """The symbol the keys ask for, or None for no change."""
    index = symbols.index(current)
    chosen = None
    i = 0
    while i < len(keys):
        if keys.startswith("\x1b[Z", i):  # shift-tab
            index, chosen, i = (index - 1) % len(symbols), True, i + 3
            continue
        key = keys[i]
        if key == "\t":
            index, chosen = (index + 1) % len(symbols), True
        elif key.isdigit() and 1 <= int(key) <= len(symbols):
            index, chosen = int(key) - 1, True
        i += 1
    return symbols[index] if chosen else None


@handle_errors
def watch(
    symbol: Annotated[str, typer.Argument(help="Instrument to show first, e.g. BTC-USD.", autocompletion=symbols)],
    interval: Annotated[str, typer.Option("--interval", "-i", help=f"Chart bar width: {', '.join(INTERVALS)}.")] = "1s",
    account: AccountOption = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Full-screen live view: book ladder, trades tape, price chart, own orders, position, risk.

    Keys: q quit, tab / shift-tab next / previous symbol, 1-9 pick a symbol.
    With --json, prints the view's state as one JSON line per second instead.

    Example: tradsys watch BTC-USD --interval 1m
    """
    if interval not in INTERVALS:
        raise CliError(EXIT_USAGE, f"usage: --interval must be one of {', '.join(INTERVALS)}")
    client = Client()
    listed = client.call(client.market.ListInstruments, md.ListInstrumentsRequest())
    symbols = [i.symbol for i in listed.instruments]
    symbol = symbol.upper()
    if symbol not in symbols:
        raise CliError(EXIT_USAGE, f"usage: unknown symbol {symbol!r}; known: {', '.join(symbols)}")
    who = target.own_account(account)

    def open_feed(name: str) -> Feed:
        return Feed(client, name, who, interval)

    try:
        if as_json:
            _print_json(open_feed(symbol))
        else:
            _run_screen(open_feed, symbol, symbols, who)
    except KeyboardInterrupt:
        pass


def _print_json(feed: Feed) -> None:
    try:
        while True:
            time.sleep(1.0)
            emit_line(json_state(feed.snapshot()))
    finally:
        feed.stop()


def _run_screen(open_feed: Callable[[str], Feed], symbol: str, symbols: list[str], who: str | None) -> None:
    """Draw until q; switching symbols replaces the feed, and whichever feed is current at the end is stopped."""
    feed = open_feed(symbol)
    console = Console()
    try:
        with _keys() as interactive, Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
            while True:
                live.update(render(feed.snapshot(), symbols, who), refresh=True)
                if not interactive:
                    time.sleep(1 / FPS)
                    continue
                keys = _read_keys(1 / FPS)
                if "q" in keys or "Q" in keys:
                    return
                chosen = _next_symbol(keys, symbols, feed.state.symbol)
                if chosen is not None and chosen != feed.state.symbol:
                    feed.stop()
                    feed = open_feed(chosen)
    finally:
        feed.stop()
