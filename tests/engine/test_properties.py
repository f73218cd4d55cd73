"""Property tests: random command streams against invariants and a reference model.

1. `test_matches_reference_model*`: limit/IOC/FOK/market orders, cancels and amends from a few
   accounts at prices a few ticks around 100.00. A deliberately naive `Model` (sort the whole
   opposite side by price, then arrival, on every order) must produce the same events and the
   same resting book after every command: price-time priority, maker prices, partial fills, FOK,
   self-trade prevention, the amend priority rules. `Quantities` checks, per order and from the
   events alone, that ordered (first qty + amend changes) = filled + open + cancelled remainder.
2. `test_invariants_with_stops_expiry_and_flags*`: adds stops, DAY/GTD expiry, clock moves,
   post-only and reduce-only, with risk on; invariants only.
3. `test_fok_is_all_or_nothing_under_every_stp_mode`.

Every stream runs through `Ledger`, which after each command checks: the book is not crossed;
level totals match their orders; every open order rests unless it waits for its stop; no stop is
left waiting that the last trade went through; fills are at the maker's price within the taker's
limit, with fees rounded up; reduce-only fills never grow or flip a position; per account,
position = signed sum of fills, open_buy/open_sell = open quantities, reserved = sum of
hold x open qty (the hold derived from the order alone), margin = |cost basis|; and cash:

  per account and symbol   realized - cost == sum of fill cash flows (sells +p*q, buys -p*q)
  per account              balance == initial + mult * realized - fees
  across accounts          sum of position qty == 0, so sum of unrealized at any mark == -sum cost,
                           hence sum(balance) + mult * sum(unrealized(mark)) + total fees
                           == sum(initial balances)   for every mark price.
  With zero fees, total equity at any common mark is conserved; total cash alone is not (it moves
  with realized PnL) unless every position is flat.

Each family runs twice: on hypothesis-built command lists (which shrink to readable
counterexamples) and on streams drawn from a seeded PRNG (`random_stream(seed, n)`), because
hypothesis's lists favour repeated elements (one account, one side) that seldom trade.
Examples are derandomized and the example database is off, so a run is repeatable; note that
hypothesis also mixes in constants from the loaded modules, so the examples can differ between
running this file alone and the whole suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import ceil
from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradsys.engine import (
    Order,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderTriggered,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Venue,
    VenueConfig,
)

from helpers import BTC, HOUR, cash_field

MID = 10_000  # 100.00 in ticks
MULT = 1000  # BTC-USD cash units per tick x lot
ACCOUNTS = ("a1", "a2", "a3")

PROPS = settings(
    max_examples=200,
    derandomize=True,
    database=None,  # same examples on every run and machine: no replay of earlier failures
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STRUCTURED = settings(PROPS, max_examples=80)
"""Hypothesis-built streams shrink to readable counterexamples but cost more to generate."""

FEES = [
    {"maker_fee_bps": Decimal("1"), "taker_fee_bps": Decimal("5")},
    {"maker_fee_bps": Decimal("0"), "taker_fee_bps": Decimal("0")},
    {"maker_fee_bps": Decimal("-2.5"), "taker_fee_bps": Decimal("7.3")},
]


def norm(e) -> tuple:
    if isinstance(e, OrderAccepted):
        return ("accepted", e.order.id)
    if isinstance(e, OrderFilled):
        return ("fill", e.taker.id, e.maker.id, e.price, e.qty)
    if isinstance(e, OrderCancelled):
        return ("cancelled", e.order.id, e.reason)
    if isinstance(e, OrderAmended):
        return ("amended", e.order.id)
    if isinstance(e, OrderRejected):
        return ("rejected", e.order_id, e.reason)
    if isinstance(e, OrderExpired):
        return ("expired", e.order.id)
    if isinstance(e, OrderTriggered):
        return ("triggered", e.order.id)
    raise TypeError(e)


# -- the reference model --------------------------------------------------------------------------


@dataclass
class MOrder:
    id: str
    account: str
    side: str
    price: int
    open: int
    arrival: int


@dataclass
class Model:
    """Price-time matching the slow, obvious way. Self-trades cancel the resting order."""

    resting: dict[str, MOrder] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    clock: int = 0

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def _crosses(self, side: str, limit: int | None, price: int) -> bool:
        return limit is None or (price <= limit if side == "buy" else price >= limit)

    def _queue(self, side: str) -> list[MOrder]:
        """The opposite side, best price first, then arrival."""
        other = [o for o in self.resting.values() if o.side != side]
        return sorted(other, key=lambda o: (o.price if side == "buy" else -o.price, o.arrival))

    def _take(self, oid: str, account: str, side: str, limit: int | None, qty: int) -> tuple[list, int]:
        """Events in the order they happen: a self-trade cancel comes where its maker stood."""
        events = []
        for maker in self._queue(side):
            if not qty or not self._crosses(side, limit, maker.price):
                break
            if maker.account == account:
                del self.resting[maker.id]
                events.append(("cancelled", maker.id, "self_trade"))
                continue
            q = min(qty, maker.open)
            events.append(("fill", oid, maker.id, maker.price, q))
            maker.open -= q
            qty -= q
            if not maker.open:
                del self.resting[maker.id]
        return events, qty

    def new(self, oid: str, account: str, side: str, kind: str, price: int, qty: int) -> list[tuple]:
        self.seen.add(oid)
        out: list[tuple] = [("accepted", oid)]
        limit = None if kind == "market" else price
        if kind == "fok":
            available = sum(
                m.open for m in self._queue(side) if m.account != account and self._crosses(side, limit, m.price)
            )
            if available < qty:
                return out + [("cancelled", oid, "fok_unfilled")]
        events, left = self._take(oid, account, side, limit, qty)
        out += events
        if left:
            if kind == "limit":
                self.resting[oid] = MOrder(oid, account, side, price, left, self._tick())
            else:
                out.append(("cancelled", oid, "unfilled_remainder"))
        return out

    def _missing(self, oid: str) -> str:
        return "order_closed" if oid in self.seen else "unknown_order"

    def cancel(self, oid: str) -> list[tuple]:
        if oid not in self.resting:
            return [("rejected", oid, self._missing(oid))]
        del self.resting[oid]
        return [("cancelled", oid, "user")]

    def amend(self, oid: str, price: int | None, qty: int | None) -> list[tuple]:
        order = self.resting.get(oid)
        if order is None:
            return [("rejected", oid, self._missing(oid))]
        new_price = order.price if price is None else price
        new_open = order.open if qty is None else qty
        if new_price == order.price and new_open <= order.open:
            order.open = new_open  # keeps its place
            return [("amended", oid)]
        del self.resting[oid]
        out: list[tuple] = [("amended", oid)]
        events, left = self._take(oid, order.account, order.side, new_price, new_open)
        out += events
        if left:
            self.resting[oid] = MOrder(oid, order.account, order.side, new_price, left, self._tick())
        return out

    def book(self) -> list[tuple]:
        bids = sorted((o for o in self.resting.values() if o.side == "buy"), key=lambda o: (-o.price, o.arrival))
        asks = sorted((o for o in self.resting.values() if o.side == "sell"), key=lambda o: (o.price, o.arrival))
        return [(o.id, o.side, o.price, o.open) for o in bids + asks]


# -- bookkeeping every test shares ----------------------------------------------------------------


@dataclass
class Ledger:
    """What the event stream says, accumulated independently of the venue's own state."""

    venue: Venue
    orders: dict[str, Order] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)
    position: dict[str, int] = field(default_factory=dict)
    cashflow: dict[str, int] = field(default_factory=dict)
    fees: dict[str, int] = field(default_factory=dict)

    def record(self, events: list) -> None:
        v = self.venue
        for e in events:
            if isinstance(e, OrderAccepted):
                self.orders[e.order.id] = e.order
                self.filled[e.order.id] = 0
            elif isinstance(e, OrderFilled):
                taker, maker = e.taker, e.maker
                # fills happen at the maker's price, within the taker's limit
                assert e.price == maker.price, (e, maker)
                if taker.price is not None:
                    assert e.price <= taker.price if taker.side is Side.BUY else e.price >= taker.price
                assert maker.side is not taker.side
                notional = e.price * e.qty * MULT
                assert e.taker_fee == ceil(Fraction(notional * v.taker_rate, 1_000_000))
                assert e.maker_fee == ceil(Fraction(notional * v.maker_rate, 1_000_000))
                for order, fee in ((taker, e.taker_fee), (maker, e.maker_fee)):
                    sign = 1 if order.side is Side.BUY else -1
                    before = self.position.get(order.account, 0)
                    after = before + sign * e.qty
                    if order.reduce_only:
                        assert abs(after) <= abs(before) and after * before >= 0, (order, before, after)
                    self.position[order.account] = after
                    self.cashflow[order.account] = self.cashflow.get(order.account, 0) - sign * e.price * e.qty
                    self.fees[order.account] = self.fees.get(order.account, 0) + fee
                    self.filled[order.id] += e.qty

    def check(self) -> None:
        v = self.venue
        book = v.books[BTC]
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask, ("crossed", bid, ask)

        resting = book.resting()
        # level totals agree with the orders in them
        levels: dict[tuple[Side, int], list[int]] = {}
        for o in resting:
            entry = levels.setdefault((o.side, o.price), [0, 0])
            entry[0] += o.open_qty
            entry[1] += 1
        bids, asks = book.depth(10**6)
        assert {(Side.BUY, p): [q, n] for p, q, n in bids} | {(Side.SELL, p): [q, n] for p, q, n in asks} == levels

        # open orders: in the book unless they wait for a stop price; counts and sums add up
        pending = {o.id for o in v.orders.values() if o.stop_price is not None and not o.triggered}
        assert {o.id for o in resting} == set(v.orders) - pending
        for o in resting:
            assert o.open_qty > 0 and o.is_open
        for oid, order in self.orders.items():
            assert self.filled[oid] == order.filled_qty, order
            if order.is_open:
                assert v.orders.get(oid) is order
                assert order.qty == order.filled_qty + order.open_qty
                assert order.status is (OrderStatus.NEW if order.filled_qty == 0 else OrderStatus.PARTIALLY_FILLED)
                assert order.expire_ns is None or order.expire_ns > v.now
                if order.stop_price is None or order.triggered:  # not waiting for its stop
                    assert order.type is not OrderType.MARKET and order.type is not OrderType.STOP
                    assert order.tif is not TimeInForce.IOC and order.tif is not TimeInForce.FOK
            else:
                assert oid not in v.orders
                assert order.open_qty == 0
                assert (order.status is OrderStatus.FILLED) == (order.filled_qty == order.qty), order
                assert order.filled_qty <= order.qty
            if order.tif is TimeInForce.FOK:
                assert order.filled_qty in (0, order.qty), order

        # stops: none left waiting that the last trade has gone through
        last = v.last[BTC]
        for oid in pending:
            o = v.orders[oid]
            assert last is None or not (last >= o.stop_price if o.side is Side.BUY else last <= o.stop_price), o

        # positions, open quantities, holds, margin, cash
        total_fees = 0
        total_equity = 0
        for acct_id, acct in v.accounts.items():
            pos = acct.positions.get(BTC)
            qty = cost = realized = open_buy = open_sell = 0
            if pos is not None:
                qty, cost, realized, open_buy, open_sell = pos.qty, pos.cost, pos.realized, pos.open_buy, pos.open_sell
                assert pos.fees == self.fees.get(acct_id, 0)
            mine = [o for o in v.orders.values() if o.account == acct_id]
            assert qty == self.position.get(acct_id, 0)
            assert open_buy == sum(o.open_qty for o in mine if o.side is Side.BUY)
            assert open_sell == sum(o.open_qty for o in mine if o.side is Side.SELL)
            assert cash_field(acct, "USD", "reserved") == sum(expected_hold(v, o) * o.open_qty for o in mine)
            assert cash_field(acct, "USD", "margin") == abs(cost) * MULT
            assert realized - cost == self.cashflow.get(acct_id, 0)
            fees = self.fees.get(acct_id, 0)
            balance = cash_field(acct, "USD", "balance")
            assert balance == v.initial_balances["USD"] + realized * MULT - fees
            total_fees += fees
            total_equity += balance + (qty * MID - cost) * MULT
        assert sum(self.position.values()) == 0
        assert total_equity + total_fees == len(v.accounts) * v.initial_balances["USD"]


def expected_hold(v: Venue, o: Order) -> int:
    """Cash held per open lot, derived from the order alone."""
    if o.reduce_only:
        return 0
    if o.price is not None:
        return o.price * MULT
    # a pending stop-market order holds at the edge of the 5 % band around its stop price
    stop = o.stop_price
    edge = stop + stop * 50_000 // 1_000_000 if o.side is Side.BUY else max(1, stop - stop * 50_000 // 1_000_000)
    return edge * MULT


# -- 1. against the model -------------------------------------------------------------------------

price = st.integers(MID - 4, MID + 4)
lots = st.integers(1, 12)
new_cmd = st.tuples(
    st.just("new"), st.sampled_from(ACCOUNTS), st.sampled_from(["buy", "sell"]),
    st.sampled_from(["limit", "limit", "ioc", "fok", "market"]), price, lots,
)
target = st.integers(0, 63)
"""Which earlier order a cancel or amend is for: resolved by `pick` against the ids so far."""
cancel_cmd = st.tuples(st.just("cancel"), target)
amend_cmd = st.one_of(
    st.tuples(st.just("amend"), target, price, st.none()),
    st.tuples(st.just("amend"), target, st.none(), lots),
    st.tuples(st.just("amend"), target, price, lots),
)


def weighted(*pairs: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """Pick a strategy with the given weights (one_of would weigh nested one_ofs by their branches)."""
    return st.sampled_from([s for w, s in pairs for _ in range(w)]).flatmap(lambda s: s)


structured_streams = st.lists(weighted((6, new_cmd), (2, cancel_cmd), (2, amend_cmd)), min_size=8, max_size=30)


def random_stream(
    seed: int, n: int, accounts: tuple[str, ...] = ACCOUNTS,
    kinds: tuple[str, ...] = ("limit", "limit", "limit", "ioc", "fok", "market"), spread: int = 4,
) -> list[tuple]:
    """The same commands drawn uniformly from a seeded PRNG. Hypothesis's own lists favour
    repeats (same account, same side), which rarely trade; these trade much more."""
    rng = Random(seed)
    out: list[tuple] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.7:
            kind = rng.choice(kinds)
            side = rng.choice(["buy", "sell"])
            out.append(("new", rng.choice(accounts), side, kind, random_price(rng, side, spread), rng.randint(1, 12)))
        elif r < 0.82:
            out.append(("cancel", rng.randrange(64)))
        else:
            px = rng.choice([None, rng.randint(MID - 4, MID + 4)])
            qty = rng.randint(1, 12) if px is None or rng.random() < 0.5 else None
            out.append(("amend", rng.randrange(64), px, qty))
    return out


random_streams = st.builds(random_stream, st.integers(0, 2**32), st.integers(8, 40))


def pick(ids: list[str], live: dict, k: int) -> str:
    """An earlier order id for k in 0..63: mostly a live one, sometimes any, once in a while
    (k = 63) one never used."""
    if not ids or k == 63:
        return "ghost"
    pool = [i for i in ids if i in live] if k % 4 else ids
    pool = pool or ids
    return pool[(k // 4) % len(pool)]


def random_price(rng: Random, side: str, spread: int = 4) -> int:
    """Half passive (anywhere near the mid), half leaning across it."""
    if rng.random() < 0.5:
        return rng.randint(MID - spread, MID + spread)
    return MID + rng.randint(-spread // 2, spread) * (1 if side == "buy" else -1)


def order_for(oid: str, account: str, side: str, kind: str, price: int, qty: int) -> Order:
    otype = OrderType.MARKET if kind == "market" else OrderType.LIMIT
    tif = {"limit": TimeInForce.GTC, "ioc": TimeInForce.IOC, "fok": TimeInForce.FOK, "market": TimeInForce.IOC}[kind]
    return Order(oid, account, BTC, Side(side), otype, qty, price=None if kind == "market" else price, tif=tif)


@STRUCTURED
@given(commands=structured_streams, risk=st.booleans(), fees=st.sampled_from(FEES))
def test_matches_reference_model(commands: list[tuple], risk: bool, fees: dict) -> None:
    run_against_model(commands, risk, fees)


@PROPS
@given(commands=random_streams, risk=st.booleans(), fees=st.sampled_from(FEES))
def test_matches_reference_model_random_streams(commands: list[tuple], risk: bool, fees: dict) -> None:
    run_against_model(commands, risk, fees)


@dataclass
class Quantities:
    """Per order, from the commands and events alone: what was ordered (first qty plus every
    amend's change of the open quantity), what is open, what was cancelled or expired unfilled."""

    ordered: dict[str, int] = field(default_factory=dict)
    open: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def record(self, events: list, new_qty: int | None = None, amend_qty: int | None = None) -> None:
        for e in events:
            if isinstance(e, OrderAccepted):
                oid = e.order.id
                self.ordered[oid] = self.open[oid] = new_qty
                self.dropped[oid] = 0
            elif isinstance(e, OrderAmended) and amend_qty is not None:
                oid = e.order.id
                self.ordered[oid] += amend_qty - self.open[oid]
                self.open[oid] = amend_qty
            elif isinstance(e, OrderFilled):
                self.open[e.taker.id] -= e.qty
                self.open[e.maker.id] -= e.qty
                assert (e.taker_open, e.maker_open) == (self.open[e.taker.id], self.open[e.maker.id]), e
            elif isinstance(e, (OrderCancelled, OrderExpired)):
                oid = e.order.id
                self.dropped[oid] += self.open[oid]
                self.open[oid] = 0

    def check(self, ledger: Ledger) -> None:
        for oid, order in ledger.orders.items():
            filled = ledger.filled[oid]
            assert self.ordered[oid] == filled + self.open[oid] + self.dropped[oid], order
            assert order.qty == self.ordered[oid], order
            assert order.open_qty == self.open[oid], order
            assert order.is_open == (self.open[oid] > 0), order


def run_against_model(commands: list[tuple], risk: bool, fees: dict) -> None:
    venue = Venue(config=VenueConfig(risk=risk, **fees))
    model = Model()
    ledger = Ledger(venue)
    quantities = Quantities()
    ids: list[str] = []
    for i, cmd in enumerate(commands):
        new_qty = amend_qty = None
        if cmd[0] == "new":
            _, account, side, kind, px, new_qty = cmd
            oid = f"o{i}"
            ids.append(oid)
            events = venue.place(order_for(oid, account, side, kind, px, new_qty))
            expected = model.new(oid, account, side, kind, px, new_qty)
        elif cmd[0] == "cancel":
            oid = pick(ids, venue.orders, cmd[1])
            events = venue.cancel(oid)
            expected = model.cancel(oid)
        else:
            _, k, px, amend_qty = cmd
            oid = pick(ids, venue.orders, k)
            events = venue.amend(oid, price=px, qty=amend_qty)
            expected = model.amend(oid, px, amend_qty)
        assert [norm(e) for e in events] == expected, (i, cmd)
        ledger.record(events)
        ledger.check()
        quantities.record(events, new_qty, amend_qty)
        quantities.check(ledger)
        assert [(o.id, o.side.value, o.price, o.open_qty) for o in venue.books[BTC].resting()] == model.book()
        fills = [e for e in events if isinstance(e, OrderFilled)]
        if fills:
            assert venue.last[BTC] == fills[-1].price


# -- 2. stops, expiry, flags; invariants only --------------------------------------------------------

rich_new = st.fixed_dictionaries(
    {
        "account": st.sampled_from(ACCOUNTS),
        "side": st.sampled_from(["buy", "sell"]),
        "type": st.sampled_from(["limit", "limit", "limit", "market", "stop", "stop_limit"]),
        "tif": st.sampled_from(["GTC", "GTC", "IOC", "FOK", "DAY", "GTD"]),
        "price": price,
        "stop": price,
        "qty": lots,
        "post_only": st.booleans() | st.just(False),
        "reduce_only": st.sampled_from([False, False, False, True]),
        "expire_in": st.integers(1, 30 * HOUR),
    }
).map(lambda d: ("new", d))
rich_amend = st.one_of(
    amend_cmd.map(lambda c: (*c, None)),
    st.tuples(st.just("amend"), target, st.none() | price, st.none() | lots, price),
)
step = st.sampled_from([0, 0, 0, 1, HOUR, 7 * HOUR])
structured_rich_streams = st.lists(
    st.tuples(step, weighted((6, rich_new), (2, cancel_cmd), (2, rich_amend), (1, st.just(("advance",))))),
    min_size=8,
    max_size=30,
)


def random_rich_stream(seed: int, n: int) -> list[tuple]:
    rng = Random(seed)
    out: list[tuple] = []
    for _ in range(n):
        dt = rng.choice([0, 0, 0, 1, HOUR, 7 * HOUR])
        r = rng.random()
        if r < 0.6:
            side = rng.choice(["buy", "sell"])
            d = {
                "account": rng.choice(ACCOUNTS),
                "side": side,
                "type": rng.choice(["limit", "limit", "limit", "market", "stop", "stop_limit"]),
                "tif": rng.choice(["GTC", "GTC", "IOC", "FOK", "DAY", "GTD"]),
                "price": random_price(rng, side),
                "stop": rng.randint(MID - 4, MID + 4),
                "qty": rng.randint(1, 12),
                "post_only": rng.random() < 0.1,
                "reduce_only": rng.random() < 0.2,
                "expire_in": rng.randint(1, 30 * HOUR),
            }
            out.append((dt, ("new", d)))
        elif r < 0.75:
            out.append((dt, ("cancel", rng.randrange(64))))
        elif r < 0.95:
            fields = [rng.choice([None, rng.randint(MID - 4, MID + 4)]), rng.choice([None, rng.randint(1, 12)]),
                      rng.choice([None, None, rng.randint(MID - 4, MID + 4)])]
            if fields == [None, None, None]:
                fields[1] = rng.randint(1, 12)
            out.append((dt, ("amend", rng.randrange(64), *fields)))
        else:
            out.append((dt, ("advance",)))
    return out


random_rich_streams = st.builds(random_rich_stream, st.integers(0, 2**32), st.integers(8, 40))


def rich_order(oid: str, d: dict, now: int) -> Order:
    otype = OrderType(d["type"])
    has_price = otype in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    has_stop = otype in (OrderType.STOP, OrderType.STOP_LIMIT)
    tif = TimeInForce(d["tif"])
    return Order(
        oid, d["account"], BTC, Side(d["side"]), otype, d["qty"],
        price=d["price"] if has_price else None,
        stop_price=d["stop"] if has_stop else None,
        tif=tif,
        post_only=d["post_only"],
        reduce_only=d["reduce_only"],
        expire_ns=now + d["expire_in"] if tif is TimeInForce.GTD else None,
        ts=now,
    )


@STRUCTURED
@given(commands=structured_rich_streams, fees=st.sampled_from(FEES))
def test_invariants_with_stops_expiry_and_flags(commands: list[tuple], fees: dict) -> None:
    run_rich(commands, fees)


@PROPS
@given(commands=random_rich_streams, fees=st.sampled_from(FEES))
def test_invariants_with_stops_expiry_and_flags_random_streams(commands: list[tuple], fees: dict) -> None:
    run_rich(commands, fees)


def run_rich(commands: list[tuple], fees: dict) -> None:
    venue = Venue(config=VenueConfig(**fees))
    ledger = Ledger(venue)
    ids: list[str] = []
    now = 0
    for i, (dt, cmd) in enumerate(commands):
        now += dt
        if cmd[0] == "new":
            ids.append(f"o{i}")
            events = venue.place(rich_order(f"o{i}", cmd[1], now))
        elif cmd[0] == "cancel":
            events = venue.cancel(pick(ids, venue.orders, cmd[1]), ts=now)
        elif cmd[0] == "advance":
            events = venue.advance(now)
        else:
            _, k, px, qty, stop = cmd
            oid = pick(ids, venue.orders, k)
            events = venue.amend(oid, price=px, qty=qty, stop_price=stop, ts=now)
        ledger.record(events)
        ledger.check()
        for e in events:
            if isinstance(e, OrderFilled):
                assert not e.taker.post_only, e
        assert venue.now == now


# -- 3. fill-or-kill under every self-trade prevention mode ----------------------------------------


@pytest.mark.parametrize("stp", list(SelfTradePrevention))
@PROPS
@given(
    commands=st.builds(
        random_stream, st.integers(0, 2**32), st.integers(30, 60), st.just(("a1", "a2")),
        st.just(("limit", "limit", "fok")), st.just(2),
    ),
)
def test_fok_is_all_or_nothing_under_every_stp_mode(stp: SelfTradePrevention, commands: list[tuple]) -> None:
    """Fails for CANCEL_TAKING / CANCEL_BOTH: see test_orders.test_fok_is_all_or_nothing_under_every_stp_mode.
    Two accounts and tight prices, so that own orders often sit among others at a level."""
    venue = Venue(config=VenueConfig(stp=stp, risk=False))
    ledger = Ledger(venue)
    ids: list[str] = []
    for i, cmd in enumerate(commands):
        if cmd[0] == "new":
            ids.append(f"o{i}")
            events = venue.place(order_for(f"o{i}", *cmd[1:]))
        elif cmd[0] == "cancel":
            events = venue.cancel(pick(ids, venue.orders, cmd[1]))
        else:
            events = venue.amend(pick(ids, venue.orders, cmd[1]), price=cmd[2], qty=cmd[3])
        ledger.record(events)
        ledger.check()
