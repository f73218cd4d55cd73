"""History downloads: OHLCV bars or public trades, page by page, appended to a file and resumable.

A run starts where the file ends (the bar after its last one; for trades, its last millisecond,
leaving out ids it already holds), so running the same command again fetches only what is
missing, with no duplicate and no hole at the seam. Pages go through ccxt's own rate limiter
(`enableRateLimit`). Whatever was fetched is written when the run ends, fails or is interrupted,
and every `checkpoint_pages` pages on the way, so a failure loses at most that much work; the
summary says where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from tradsys.exchanges import history_file
from tradsys.exchanges.errors import ExchangeFailure, classify
from tradsys.exchanges.history_file import Kind
from tradsys.exchanges.symbols import tradsys_symbol

TRADES_WINDOW_MS = 3_600_000
"""How far a trades cursor moves past an empty page: Binance answers at most an hour per request."""

Progress = Callable[[int, int], None]
"""Called after each page with (milliseconds covered, milliseconds to cover)."""


@dataclass(frozen=True)
class Request:
    kind: Kind
    symbol: str
    """ccxt's spelling, `BTC/USDT`."""
    since_ms: int
    until_ms: int
    """Exclusive. Bars end with the last one that closed by then."""
    out: Path
    timeframe: str = "1m"
    page_limit: int = 1000
    retries: int = 3
    checkpoint_pages: int = 50


@dataclass
class Summary:
    exchange: str
    symbol: str
    kind: str
    timeframe: str | None
    out: str
    rows_before: int = 0
    rows_added: int = 0
    rows: int = 0
    first: str | None = None
    last: str | None = None
    pages: int = 0
    complete: bool = False
    stopped_at: str | None = None
    """Where an unfinished run stopped: the next run resumes from here."""
    error: str | None = None
    error_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _State:
    cursor: int
    pages: int = 0
    new: list[pl.DataFrame] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Download:
    """One download into one file. `run` returns its Summary; a failure is in the summary, not raised."""

    def __init__(self, exchange: Any, request: Request, progress: Progress | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.exchange = exchange
        self.request = request
        self.progress = progress
        self.sleep = sleep
        self.symbol = tradsys_symbol(request.symbol)
        self.step_ms = exchange.parse_timeframe(request.timeframe) * 1000 if request.kind == "bars" else 0
        self.existing = history_file.read(request.out, request.kind, self.symbol)

    def run(self) -> Summary:
        req = self.request
        summary = Summary(self.exchange.id, self.symbol, req.kind, req.timeframe if req.kind == "bars" else None,
                          str(req.out), rows_before=0 if self.existing is None else self.existing.height)
        state = self._start()
        begin = state.cursor
        try:
            while not self._done(state.cursor):
                self._page(state)
                if self.progress is not None:
                    self.progress(min(state.cursor, req.until_ms) - begin, max(req.until_ms - begin, 1))
                if state.pages % req.checkpoint_pages == 0:
                    self._save(state)
            summary.complete = True
        except ExchangeFailure as exc:
            summary.error, summary.error_kind = exc.message, exc.kind
        except KeyboardInterrupt:
            summary.error, summary.error_kind = "interrupted", "interrupted"
        data = self._save(state)
        summary.pages = state.pages
        summary.rows = data.height if data is not None else 0
        summary.rows_added = summary.rows - summary.rows_before
        if data is not None and data.height:
            summary.first = iso(int(data["ts"].dt.epoch("ms").min()))  # type: ignore[arg-type]
            summary.last = iso(int(data["ts"].dt.epoch("ms").max()))  # type: ignore[arg-type]
        if not summary.complete:
            summary.stopped_at = iso(state.cursor)
        return summary

    # -- paging ---------------------------------------------------------------------------------

    def _start(self) -> _State:
        """Where the file ends: the bar after its last, or its last trade's millisecond and the ids there."""
        req = self.request
        if self.existing is None or self.existing.height == 0:
            return _State(req.since_ms)
        last = int(self.existing["ts"].dt.epoch("ms").max())  # type: ignore[arg-type]
        if req.kind == "bars":
            return _State(max(req.since_ms, last + self.step_ms))
        if last < req.since_ms:
            return _State(req.since_ms)
        at_last = self.existing.filter(pl.col("ts").dt.epoch("ms") == last)
        return _State(last, seen_ids={str(i) for i in at_last["id"].to_list()})

    def _done(self, cursor: int) -> bool:
        if self.request.kind == "bars":
            return cursor + self.step_ms > self.request.until_ms
        return cursor >= self.request.until_ms

    def _page(self, state: _State) -> None:
        req = self.request
        if req.kind == "bars":
            rows = self._fetch(lambda: self.exchange.fetch_ohlcv(
                req.symbol, req.timeframe, since=state.cursor, limit=req.page_limit,
                params={"until": req.until_ms - 1}))
            self._take_bars(state, rows)
        else:
            rows = self._fetch(lambda: self.exchange.fetch_trades(req.symbol, since=state.cursor, limit=req.page_limit))
            self._take_trades(state, rows)
        state.pages += 1

    def _fetch(self, call: Callable[[], list]) -> list:
        """One page, retried with backoff when the network fails; other errors end the run."""
        for attempt in range(self.request.retries + 1):
            try:
                return call()
            except Exception as exc:
                failure = classify(exc)
                if failure.kind == "refused" or attempt == self.request.retries:
                    raise failure from exc
                self.sleep(min(2.0 ** attempt, 30.0))
        raise AssertionError("unreachable")

    def _take_bars(self, state: _State, rows: list[list]) -> None:
        last_open = self.request.until_ms - self.step_ms
        kept = [row for row in rows if state.cursor <= row[0] <= last_open]
        if not kept:
            state.cursor = self.request.until_ms  # nothing more before `until`
            return
        state.new.append(history_file.frame("bars", {
            "ts": [row[0] for row in kept], "symbol": [self.symbol] * len(kept),
            "open": [_float(row[1]) for row in kept], "high": [_float(row[2]) for row in kept],
            "low": [_float(row[3]) for row in kept], "close": [_float(row[4]) for row in kept],
            "volume": [_float(row[5]) for row in kept]}))
        state.cursor = kept[-1][0] + self.step_ms

    def _take_trades(self, state: _State, rows: list[dict]) -> None:
        kept = [t for t in rows if state.cursor <= t["timestamp"] < self.request.until_ms
                and str(t["id"]) not in state.seen_ids]
        if not kept:
            # an empty window: the next one; a page of trades already taken or past `until`: past them
            latest = max((t["timestamp"] for t in rows), default=None)
            step = TRADES_WINDOW_MS if latest is None else max(latest - state.cursor, 1)
            state.cursor = min(state.cursor + step, self.request.until_ms)
            return
        kept.sort(key=lambda t: t["timestamp"])
        state.new.append(history_file.frame("trades", {
            "ts": [t["timestamp"] for t in kept], "symbol": [self.symbol] * len(kept),
            "price": [_float(t["price"]) for t in kept], "qty": [_float(t["amount"]) for t in kept],
            "side": [t.get("side") for t in kept], "id": [str(t["id"]) for t in kept]}))
        last = kept[-1]["timestamp"]
        state.seen_ids = {str(t["id"]) for t in kept if t["timestamp"] == last} | (
            state.seen_ids if last == state.cursor else set())
        state.cursor = last

    def _save(self, state: _State) -> pl.DataFrame | None:
        """Existing rows plus everything fetched so far, written to the file (nothing written when none)."""
        if not state.new:
            return self.existing
        parts = ([self.existing] if self.existing is not None else []) + state.new
        data = pl.concat(parts, how="vertical")
        history_file.write(self.request.out, data)
        self.existing, state.new = data, []
        return data


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
