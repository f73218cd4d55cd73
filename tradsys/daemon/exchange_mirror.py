"""Paper trading on a real market: an actor that mirrors live exchange books into the venue.

For each feed symbol the mirror keeps one resting order of its account per exchange level (the
top `depth` per side, from `tradsys.exchanges.live_feed`), so the venue's public book is the
exchange's and a marketable paper order walks it at the exchange's prices, up to its sizes,
through the venue's own matching, risk checks, journal, positions and fees. Each step it
replaces the levels that changed (cancels first, then the new levels, so its own orders never
cross). A level a paper order took is restored at the next step, as the exchange still shows it:
your paper trades do not move the real market.

Exchange trades go to the feeds as they print (the tape, the bars, the `trades:SYM` stream). A print strictly through
the price of a resting paper order fills it, at its own price and for at most the print's size
(the backtester's `--queue through` rule): the mirror cancels its own levels in the way and sends
an IOC at the worst such price for the sizes it owes.

When a feed goes stale (dropped connection, book sequence gap, not yet connected) the mirror
cancels its levels and halts the symbol with reason `feed_stale`, so new orders on it are refused
with that reason; with the next fresh book it resumes and restores the levels. Like every actor it
only reads the venue and returns commands; it never waits on the network (the feed thread does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from tradsys.daemon.ids import run_tag
from tradsys.engine.commands import fmt
from tradsys.engine.enums import Side
from tradsys.engine.instrument import Instrument
from tradsys.engine.venue import Venue
from tradsys.exchanges.live_feed import Level, Print, SymbolFeed

ACCOUNT = "feed-mirror"
STALE_REASON = "feed_stale"
DEPOSIT = Decimal("1000000000000")
"""Cash the mirror account holds per quote currency: its levels are fully margined like any order."""
LIFTED = ("max_orders_per_second", "max_order_notional", "max_position", "daily_loss_limit", "price_band_pct")
"""Limits the mirror does not trade under: the exchange's book is what it is."""

Publish = Callable[[str, dict[str, Any], int, int], None]
"""(symbol, trade record, price in ticks, quantity in lots): an exchange trade for the feeds."""


class _Mirrored:
    """One symbol: its feed, its instrument, and the mirror's live orders by (is bid, price ticks)."""

    __slots__ = ("feed", "inst", "exchange", "levels", "book", "halted", "last_print_ns")

    def __init__(self, feed: SymbolFeed, inst: Instrument, exchange: str) -> None:
        self.feed = feed
        self.inst = inst
        self.exchange = exchange
        self.levels: dict[tuple[bool, int], str] = {}
        self.book: tuple[list[Level], list[Level]] | None = None
        """The exchange's last book, which the levels follow."""
        self.halted = False
        self.last_print_ns = 0


class ExchangeMirror:
    """The actor; `setup_commands` must be in effect (then `ready` set) before it acts."""

    def __init__(self, feeds: Mapping[str, tuple[str, SymbolFeed]], instruments: Mapping[str, Instrument],
                 publish: Publish | None = None, account: str = ACCOUNT) -> None:
        """`feeds`: venue symbol -> (exchange id, its SymbolFeed)."""
        self.account = account
        self.publish = publish
        self._symbols = [_Mirrored(feed, instruments[symbol], exchange) for symbol, (exchange, feed) in feeds.items()]
        self.ready = False
        self._run = ""
        self._n = 0
        self.started_ns = 0

    def setup_commands(self, venue: Venue) -> list[dict[str, Any]]:
        """Lift the mirror account's limits and give it cash in each quote currency it lacks."""
        out: list[dict[str, Any]] = [{"op": "limit", "key": key, "value": None, "account": self.account} for key in LIFTED]
        account = venue.accounts.get(self.account)
        for ccy in dict.fromkeys(m.inst.quote for m in self._symbols):
            wallet = account.wallets.get(ccy) if account is not None else None
            if wallet is None or wallet.balance < int(DEPOSIT) * 10**8 // 2:
                out.append({"op": "deposit", "account": self.account, "currency": ccy, "amount": fmt(DEPOSIT)})
        return out

    def owns(self, order_id: str) -> bool:
        return order_id.startswith(self.account + "-")

    def step(self, now_ns: int, venue: Venue) -> list[dict[str, Any]]:
        if not self.ready:
            return []
        out: list[dict[str, Any]] = []
        if not self._run:
            self._run, self.started_ns = run_tag(now_ns), now_ns
            # levels left by an earlier run (restored from the journal) are not the exchange's now
            out += [{"op": "cancel", "id": o.id, "account": self.account}
                    for o in list(venue.orders.values()) if o.account == self.account]
        for m in self._symbols:
            taken = m.feed.take()
            m.last_print_ns = max(m.last_print_ns, taken.last_print_ns)
            if taken.stale is not None:
                m.book = None
                if not m.halted:
                    self._cancel(m, venue, lambda key: True, out)
                    out.append({"op": "halt", "symbol": m.inst.symbol, "reason": STALE_REASON})
                    m.halted = True
                continue
            resumed = m.halted
            if resumed:
                out.append({"op": "resume", "symbol": m.inst.symbol})
                m.halted = False
            if taken.book is not None:
                m.book = taken.book
            # a kill switch, an admin's halt or a tripped breaker would refuse every level, every step
            closed = venue.kill_switch or (venue.halt_reason(m.inst.symbol) is not None and not resumed)
            if m.book is not None and not closed:
                self._sync(m, m.book, venue, out)
            for item in taken.prints:
                self._print(m, item, venue, out)
        return out

    def staleness(self, now_ns: int) -> dict[str, float]:
        """Seconds since each symbol's last exchange print (since start before the first)."""
        return {m.inst.symbol: (now_ns - (m.last_print_ns or self.started_ns or now_ns)) / 1e9 for m in self._symbols}

    def stale(self) -> dict[str, bool]:
        return {m.inst.symbol: m.feed.stale is not None for m in self._symbols}

    # -- levels ---------------------------------------------------------------------------------

    def _sync(self, m: _Mirrored, book: tuple[list[Level], list[Level]], venue: Venue, out: list[dict[str, Any]]) -> None:
        """Make the mirror's orders equal the exchange's levels: cancel what changed, then place."""
        inst = m.inst
        wanted: dict[tuple[bool, int], int] = {}
        for bid, levels in ((True, book[0]), (False, book[1])):
            for price, qty in levels:
                ticks, lots = _ticks(inst, price), min(_lots(inst, qty), inst.max_qty)
                if ticks > 0 and lots >= inst.min_qty:
                    wanted[(bid, ticks)] = lots
        keep: set[tuple[bool, int]] = set()
        for key, oid in list(m.levels.items()):
            order = venue.orders.get(oid)
            if order is not None and wanted.get(key) == order.open_qty:
                keep.add(key)
            else:
                if order is not None:
                    out.append({"op": "cancel", "id": oid, "account": self.account})
                del m.levels[key]
        for (bid, ticks), lots in wanted.items():
            if (bid, ticks) not in keep:
                oid = m.levels[(bid, ticks)] = self._next_id(inst.symbol)
                out.append({"op": "new", "id": oid, "account": self.account, "symbol": inst.symbol,
                            "side": "buy" if bid else "sell", "type": "limit", "price": fmt(inst.price(ticks)),
                            "qty": fmt(inst.qty(lots)), "tif": "GTC"})

    def _cancel(self, m: _Mirrored, venue: Venue, which: Callable[[tuple[bool, int]], bool],
                out: list[dict[str, Any]]) -> None:
        for key, oid in list(m.levels.items()):
            if which(key):
                if oid in venue.orders:
                    out.append({"op": "cancel", "id": oid, "account": self.account})
                del m.levels[key]

    # -- trades ---------------------------------------------------------------------------------

    def _print(self, m: _Mirrored, item: Print, venue: Venue, out: list[dict[str, Any]]) -> None:
        inst = m.inst
        price = _ticks(inst, item.price)
        if self.publish is not None:
            self.publish(inst.symbol, {
                "trade_id": f"{m.exchange}-{item.trade_id}", "symbol": inst.symbol, "price": fmt(inst.price(price)),
                "qty": fmt(Decimal(repr(item.qty))), "taker_side": item.taker_side, "ts": item.ts_ns,
            }, price, _lots(inst, item.qty))
        sell = item.taker_side == "sell"
        owed, worst = _lots(inst, item.qty), 0
        total = 0
        for order in venue.books[inst.symbol].resting():  # best price first, then time
            if owed <= 0:
                break
            if order.account == self.account or order.price is None:
                continue
            through = order.side is Side.BUY and order.price > price if sell else order.side is Side.SELL and order.price < price
            if through:
                fill = min(owed, order.open_qty)
                owed -= fill
                total += fill
                worst = order.price
        if not total:
            return
        # the mirror's own levels at or through the fill price stand in the way: the print took them too
        self._cancel(m, venue, lambda key: key[0] == sell and (key[1] >= worst if sell else key[1] <= worst), out)
        out.append({"op": "new", "id": self._next_id(inst.symbol), "account": self.account, "symbol": inst.symbol,
                    "side": "sell" if sell else "buy", "type": "limit", "price": fmt(inst.price(worst)),
                    "qty": fmt(inst.qty(total)), "tif": "IOC"})

    def _next_id(self, symbol: str) -> str:
        self._n += 1
        return f"{self.account}-{symbol}-{self._run}-{self._n}"


def _ticks(inst: Instrument, price: float) -> int:
    return int((Decimal(repr(price)) / inst.tick_size).to_integral_value())


def _lots(inst: Instrument, qty: float) -> int:
    return int(Decimal(repr(qty)) / inst.lot_size)
