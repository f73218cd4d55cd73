"""What the venue publishes, derived from each committed batch on the engine thread.

Topics: `book:SYM` and `book:SYM:N` (level deltas with a per-symbol sequence number, see
`book_feed`: a client that sees a gap re-requests a snapshot), `trades:SYM`, `bars:SYM` (closed bars, every interval), `orders`
(every order event with the order's state at that moment) and `positions`.
"""

import threading
from collections import deque
from typing import Any

from tradsys.daemon.book_feed import BookFeed
from tradsys.daemon.hub import Hub
from tradsys.daemon.records import fill_records, order_record, position_records, trade_record
from tradsys.daemon.store.history import History
from tradsys.engine import (
    EVENT_KINDS, Bar, BarAggregator, Event, OrderCancelled, OrderFilled, OrderRejected, Venue, parse_interval,
)
from tradsys.engine.commands import fmt

INTERVALS = ("1s", "1m", "5m", "15m", "1h", "1d")
REBUILD_NS = 2 * 3600 * 10**9
"""How far back a restart rebuilds bars and the trade tape from the stored fills..."""
REBUILD_FILLS = 200_000
"""...reading at most this many (the newest; two per trade)."""


class Feeds:
    def __init__(self, venue: Venue, hub: Hub, keep_trades: int = 1000) -> None:
        self.hub = hub
        self.book = BookFeed(venue, hub)
        self.intervals = {text: parse_interval(text) for text in INTERVALS}
        self.bars = BarAggregator(list(self.intervals.values()), keep=2000)
        self.trades = {s: deque[dict[str, Any]](maxlen=keep_trades) for s in venue.instruments}
        self.last_event_ns = 0
        self._order_seq = 0
        self._lock = threading.Lock()
        """Guards trades and bars, which readers on other threads copy."""

    def restore(self, venue: Venue, fills: History, now_ns: int) -> int:
        """Rebuild the recent bars and trade tape from the store's fills (`History.list_fills`), so a
        restart does not empty `GetBars`, charts and `trades`. Each trade is its taker's fill.
        Returns how many trades were read back."""
        rows, _more = fills.list_fills(since_ns=now_ns - REBUILD_NS, limit=REBUILD_FILLS)
        trades = [r for r in reversed(rows) if r["liquidity"] == "taker" and r["symbol"] in venue.instruments]
        with self._lock:
            for row in trades:
                symbol = row["symbol"]
                inst = venue.instruments[symbol]
                price, qty = inst.price_to_ticks(row["price"]), inst.qty_to_lots(row["qty"])
                self.bars.on_trade(symbol, row["ts"], price, qty)
                self.trades[symbol].append({
                    "trade_id": row["trade_id"], "symbol": symbol, "price": fmt(inst.price(price)),
                    "qty": fmt(inst.qty(qty)), "taker_side": row["side"], "ts": row["ts"],
                })
        return len(trades)

    def closed_bars(self, symbol: str, interval_ns: int) -> list[Bar]:
        """The closed bars kept for `symbol` at `interval_ns`, oldest first; none for an interval the
        feeds do not aggregate."""
        if interval_ns not in self.intervals.values():
            return []
        with self._lock:
            return self.bars.history(symbol, interval_ns)

    def add_trade(self, venue: Venue, symbol: str, trade: dict[str, Any], price: int, qty: int) -> None:
        """A trade that printed elsewhere (a live exchange feed's, on the engine thread): on the tape,
        in the bars and on `trades:SYM`, as a trade here would be."""
        with self._lock:
            self.trades[symbol].append(trade)
            closed = self.bars.on_trade(symbol, trade["ts"], price, qty)
        self.hub.publish(f"trades:{symbol}", trade)
        for bar in closed:
            self.hub.publish(f"bars:{bar.symbol}", self.bar_record(venue, bar, closed=True))

    def on_commit(self, batch: list[tuple[dict[str, Any], list[Event]]], venue: Venue) -> None:
        hub = self.hub
        touched: set[str] = set()
        accounts: set[str] = set()
        now = venue.now
        want_orders = hub.wants("orders")
        closed: list[Bar] = []
        with self._lock:
            for _, events in batch:
                for event in events:
                    if isinstance(event, OrderFilled):
                        symbol = event.symbol
                        touched.add(symbol)
                        accounts.update((event.taker.account, event.maker.account))
                        trade = trade_record(venue, event)
                        self.trades[symbol].append(trade)
                        hub.publish(f"trades:{symbol}", trade)
                        closed += self.bars.on_trade(symbol, event.ts, event.price, event.qty)
                    elif not isinstance(event, OrderRejected):
                        touched.add(event.order.symbol)
                    if want_orders:
                        self._publish_order_event(venue, event)
            closed += self.bars.advance(now)
        for bar in closed:
            hub.publish(f"bars:{bar.symbol}", self.bar_record(venue, bar, closed=True))
        for symbol in touched:
            self.book.update(venue, symbol, now)
        if accounts and hub.wants("positions"):
            for account in accounts:
                for record in position_records(venue, account):
                    hub.publish("positions", record)
        self.last_event_ns = now

    def _publish_order_event(self, venue: Venue, event: Event) -> None:
        self._order_seq += 1
        kind = EVENT_KINDS[type(event)]
        if isinstance(event, OrderFilled):
            taker, maker = fill_records(venue, event)
            for order, fill in ((event.taker, taker), (event.maker, maker)):
                self.hub.publish("orders", {
                    "kind": kind, "seq": self._order_seq, "ts": event.ts,
                    "order": order_record(venue, order), "fill": fill, "reason": "",
                })
            return
        if isinstance(event, OrderRejected):
            record = {"id": event.order_id, "account": event.account, "status": "rejected", "reason": event.reason}
            self.hub.publish("orders", {
                "kind": kind, "seq": self._order_seq, "ts": event.ts, "order": record, "fill": None,
                "reason": event.reason, "message": event.message, "op": event.op,
            })
            return
        reason = event.reason if isinstance(event, OrderCancelled) else ""
        self.hub.publish("orders", {
            "kind": kind, "seq": self._order_seq, "ts": event.ts,
            "order": order_record(venue, event.order, reason), "fill": None, "reason": reason,
        })

    def recent_trades(self, symbol: str, limit: int, since_ns: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            trades = [t for t in self.trades[symbol] if t["ts"] >= since_ns]
        return trades[-limit:]

    def bar_history(self, venue: Venue, symbol: str, interval: str, since_ns: int, until_ns: int | None,
                    limit: int) -> list[dict[str, Any]]:
        ns = self.intervals[interval]
        with self._lock:
            bars = [self.bar_record(venue, b, closed=True) for b in self.bars.history(symbol, ns)]
            current = self.bars.current(symbol, ns)
            if current is not None:
                bars.append(self.bar_record(venue, current, closed=False))
        bars = [b for b in bars if b["start_ns"] >= since_ns and (until_ns is None or b["start_ns"] < until_ns)]
        return bars[-limit:]

    def bar_record(self, venue: Venue, bar: Bar, closed: bool) -> dict[str, Any]:
        inst = venue.instruments[bar.symbol]
        return {
            "symbol": bar.symbol,
            "interval": next(k for k, v in self.intervals.items() if v == bar.interval_ns),
            "start_ns": bar.start_ns,
            "open": fmt(inst.price(bar.open)),
            "high": fmt(inst.price(bar.high)),
            "low": fmt(inst.price(bar.low)),
            "close": fmt(inst.price(bar.close)),
            "volume": fmt(inst.qty(bar.volume)),
            "trades": bar.trades,
            "closed": closed,
        }

