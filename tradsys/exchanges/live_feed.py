"""A live exchange feed: ccxt.pro's order books and trade prints, on a thread of its own.

One `ExchangeFeed` per exchange runs an asyncio loop on its own thread with two watchers per
symbol (`watch_order_book`, `watch_trades`). What they see waits in a `SymbolFeed` for the
engine thread to take: the latest top-of-book levels (conflated: a newer book replaces an
unread one) and the trade prints (at most `max_trades`; past that the oldest are dropped and
counted). Taking is a copy under a lock, so the engine thread never waits on the network.

A watcher that fails (connection dropped, sequence gap: ccxt.pro raises on a depth update whose
first id does not follow the book's) marks the symbol stale with the reason, waits with
exponential backoff and subscribes again, which makes ccxt.pro fetch a fresh snapshot; the
first book after that marks it live again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tradsys.exchanges.connect import make_exchange
from tradsys.exchanges.errors import classify

log = logging.getLogger("tradsys.exchanges")

Level = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Print:
    """One public trade on the exchange: taker side, price and size as the exchange sent them."""

    trade_id: str
    price: float
    qty: float
    taker_side: str
    ts_ns: int


@dataclass(slots=True)
class Taken:
    """What the engine thread takes from a symbol in one step."""

    stale: str | None
    """Why the symbol is not live ("connecting", the error), or None."""
    book: tuple[list[Level], list[Level]] | None
    """Bids and asks, best first, when the book changed since the last take; else None."""
    prints: list[Print]
    last_print_ns: int


class SymbolFeed:
    """One symbol's state between the feed thread (writer) and the engine thread (reader)."""

    def __init__(self, unified: str, symbol: str, depth: int, max_trades: int) -> None:
        self.unified = unified
        self.symbol = symbol
        self.depth = depth
        self._lock = threading.Lock()
        self._stale: str | None = "connecting"
        self._book: tuple[list[Level], list[Level]] | None = None
        self._prints: deque[Print] = deque(maxlen=max_trades)
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._max_seen = max_trades
        self.dropped_prints = 0
        self.last_print_ns = 0
        self.stale_changes = 0

    def set_book(self, bids: list[Any], asks: list[Any]) -> None:
        book = ([(float(p), float(q)) for p, q, *_ in bids[: self.depth]],
                [(float(p), float(q)) for p, q, *_ in asks[: self.depth]])
        with self._lock:
            if self._stale is not None:
                log.info("exchange feed %s live", self.symbol)
                self.stale_changes += 1
            self._stale = None
            self._book = book

    def set_stale(self, reason: str) -> None:
        with self._lock:
            if self._stale is None:
                log.warning("exchange feed %s stale: %s", self.symbol, reason)
                self.stale_changes += 1
            self._stale = reason
            self._book = None

    def add_prints(self, prints: list[Print]) -> None:
        with self._lock:
            for item in prints:
                if item.trade_id in self._seen:
                    continue
                self._remember(item.trade_id)
                if len(self._prints) == self._prints.maxlen:
                    self.dropped_prints += 1
                self._prints.append(item)
                self.last_print_ns = max(self.last_print_ns, item.ts_ns)

    def _remember(self, trade_id: str) -> None:
        """The ids of the last `max_trades` prints: ccxt.pro may hand a print over twice across a reconnect."""
        self._seen.add(trade_id)
        self._seen_order.append(trade_id)
        if len(self._seen_order) > self._max_seen:
            self._seen.discard(self._seen_order.popleft())

    def take(self) -> Taken:
        with self._lock:
            taken = Taken(self._stale, self._book, list(self._prints), self.last_print_ns)
            self._book = None
            self._prints.clear()
        return taken

    @property
    def stale(self) -> str | None:
        return self._stale


class ExchangeFeed:
    """ccxt.pro watchers for some symbols of one exchange, on a daemon thread with its own loop."""

    def __init__(self, exchange_id: str, symbols: dict[str, str], *, depth: int = 20, max_trades: int = 10_000,
                 api_url: str | None = None, ws_url: str | None = None,
                 backoff: tuple[float, float] = (0.5, 30.0)) -> None:
        """`symbols`: ccxt's spelling -> the venue's (`BTC/USDT` -> `BTC-USDT`)."""
        self.exchange_id = exchange_id
        self.feeds = {symbol: SymbolFeed(unified, symbol, depth, max_trades) for unified, symbol in symbols.items()}
        self.api_url, self.ws_url = api_url, ws_url
        self.backoff = backoff
        self.reconnects = 0
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"feed-{exchange_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        exchange = make_exchange(self.exchange_id, pro=True, api_url=self.api_url, ws_url=self.ws_url)
        tasks = [asyncio.ensure_future(watch(exchange, feed))
                 for feed in self.feeds.values() for watch in (self._watch_book, self._watch_trades)]
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await exchange.close()

    async def _retry(self, feed: SymbolFeed, exc: BaseException, delay: float, book: bool) -> float:
        """Mark the symbol stale (the book watcher's failures only) and wait; the next delay."""
        import ccxt

        gap = isinstance(exc, ccxt.ChecksumError)
        reason = f"book sequence gap: {exc}" if gap else classify(exc).message
        if book:
            feed.set_stale(reason)
        self.reconnects += 1
        log.info("exchange feed %s: %s; retrying in %.1fs", feed.symbol, reason, delay)
        await asyncio.sleep(delay)
        return min(delay * 2, self.backoff[1])

    async def _watch_book(self, exchange: Any, feed: SymbolFeed) -> None:
        delay = self.backoff[0]
        while True:
            try:
                book = await exchange.watch_order_book(feed.unified)
                feed.set_book(book["bids"], book["asks"])
                delay = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = await self._retry(feed, exc, delay, book=True)

    async def _watch_trades(self, exchange: Any, feed: SymbolFeed) -> None:
        delay = self.backoff[0]
        while True:
            try:
                trades = await exchange.watch_trades(feed.unified)
                feed.add_prints([_print(t) for t in trades])
                delay = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = await self._retry(feed, exc, delay, book=False)


def _print(trade: dict[str, Any]) -> Print:
    ts_ms = trade.get("timestamp")
    return Print(str(trade["id"]), float(trade["price"]), float(trade["amount"]), trade.get("side") or "buy",
                 int(ts_ms) * 1_000_000 if ts_ms is not None else time.time_ns())
