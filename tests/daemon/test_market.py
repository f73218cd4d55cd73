"""The simulated market against a real venue (default risk on), stepped on a simulated 50 ms clock.

Commands go through `commands.apply` exactly as the daemon's engine thread applies them.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from tradsys.engine import OrderFilled, OrderRejected, Venue, commands
from tradsys.daemon.market import SETUP_WAIT_STEPS, SimulatedMarket
from tradsys.daemon.market_config import SimConfig
from tradsys.daemon.market_prices import DataFeed, PriceSource, RandomWalk

SECOND = 1_000_000_000
STEP = 50_000_000
T0 = 1_700_000_000 * SECOND
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


@dataclass
class Run:
    venue: Venue
    market: SimulatedMarket
    now: int = T0
    steps: int = 0
    commands: int = 0
    max_commands: int = 0
    sim_orders: int = 0
    events: Counter = field(default_factory=Counter)
    trades: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    two_sided: Counter = field(default_factory=Counter)
    crossed: int = 0
    log: list = field(default_factory=list)
    last_prices: dict = field(default_factory=dict)

    def step(self, now: int | None = None) -> list[dict]:
        self.now = self.now + STEP if now is None else now
        cmds = self.market.step(self.now, self.venue)
        self.steps += 1
        self.commands += len(cmds)
        self.max_commands = max(self.max_commands, len(cmds))
        for cmd in cmds:
            assert "ts" not in cmd
            if cmd["op"] in ("new", "amend"):
                self.sim_orders += 1
            events = commands.apply(self.venue, {**cmd, "ts": self.now})
            self.record(events)
        for symbol, book in self.venue.books.items():
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None:
                self.two_sided[symbol] += 1
                if bid >= ask:
                    self.crossed += 1
            if self.venue.last[symbol] is not None:
                self.last_prices.setdefault(symbol, set()).add(self.venue.last[symbol])
        return cmds

    def record(self, events: list) -> None:
        for event in events:
            self.events[type(event).__name__] += 1
            self.log.append(commands.event_dict(self.venue, event))
            if isinstance(event, OrderFilled):
                self.trades[event.symbol] += 1
            elif isinstance(event, OrderRejected) and self.market.owns(event.order_id):
                self.rejected[event.reason] += 1

    def run(self, seconds: float) -> Run:
        for _ in range(int(seconds * SECOND / STEP)):
            self.step()
        return self

    def user(self, cmd: dict) -> list:
        events = commands.apply(self.venue, {**cmd, "ts": self.now})
        self.record(events)
        return events


def start(config: SimConfig | None = None, source: PriceSource | None = None, venue: Venue | None = None) -> Run:
    venue = venue or Venue()
    market = SimulatedMarket(venue.instruments, config or SimConfig(), source)
    for cmd in market.setup_commands():
        commands.apply(venue, {**cmd, "ts": T0})
    return Run(venue, market)


@pytest.fixture(scope="module")
def default_run() -> Run:
    return start().run(60)


# -- the default market ------------------------------------------------------------------


def test_setup_lifts_account_limits_and_funds_the_sim_accounts() -> None:
    venue = Venue()
    market = SimulatedMarket(venue.instruments)
    for cmd in market.setup_commands():
        assert commands.apply(venue, {**cmd, "ts": T0}) == []
    assert set(market.accounts) == {"sim-lp-1", "sim-lp-2", "sim-taker"}
    for account in market.accounts:
        assert venue.limits.get("max_orders_per_second", account) is None
        assert venue.limits.get("max_order_notional", account) is None
        assert venue.limits.get("price_band_pct", account) == Decimal(5)  # the band still applies
        assert venue.accounts[account].wallets["USD"].balance >= 10**9 * 10**8
    assert venue.limits.get("max_orders_per_second", "someone") == Decimal(1000)


def test_steps_wait_for_the_setup_to_be_applied() -> None:
    venue = Venue()
    run = Run(venue, SimulatedMarket(venue.instruments))
    assert all(run.step() == [] for _ in range(3))  # the daemon ticked before applying the setup
    for cmd in run.market.setup_commands():
        commands.apply(venue, {**cmd, "ts": run.now})
    assert run.step()
    run.run(2)
    assert not run.rejected
    # without any setup the market gives up waiting after SETUP_WAIT_STEPS steps
    venue = Venue()
    run = Run(venue, SimulatedMarket(venue.instruments, SimConfig(symbols=("BTC-USD",))))
    waited = 0
    while not run.step():
        waited += 1
    assert waited == SETUP_WAIT_STEPS


def test_books_are_two_sided_and_never_crossed(default_run: Run) -> None:
    run = default_run
    assert run.crossed == 0
    for symbol in SYMBOLS:
        assert run.two_sided[symbol] >= 0.98 * run.steps, (symbol, run.two_sided[symbol], run.steps)


def test_trades_and_events_at_a_realistic_rate(default_run: Run) -> None:
    run = default_run
    seconds = run.steps * STEP / SECOND
    events_per_symbol = sum(run.events.values()) / seconds / len(SYMBOLS)
    print(f"per symbol per second: {events_per_symbol:.1f} events, "
          + ", ".join(f"{s} {run.trades[s] / seconds:.2f} trades" for s in SYMBOLS)
          + f"; {run.commands / seconds:.1f} commands/s in all; events {dict(run.events)}")
    for symbol in SYMBOLS:
        assert 1 <= run.trades[symbol] / seconds <= 100, (symbol, run.trades[symbol])
    assert 10 <= events_per_symbol <= 200


def test_prices_move(default_run: Run) -> None:
    for symbol in SYMBOLS:
        prices = default_run.last_prices[symbol]
        assert len(prices) > 50, symbol
        assert (max(prices) - min(prices)) / min(prices) > 0.0005, symbol  # > 5 bps in a minute


def test_sim_orders_are_almost_never_rejected(default_run: Run) -> None:
    run = default_run
    rejected = sum(run.rejected.values())
    assert rejected <= 0.001 * run.sim_orders, f"{rejected} of {run.sim_orders} rejected: {dict(run.rejected)}"


def test_sim_commands_use_the_command_format_and_own_ids() -> None:
    run = start()
    for _ in range(40):
        for cmd in run.step():
            assert cmd["op"] in ("new", "amend", "cancel")
            assert cmd["id"].startswith("sim-") and not cmd["id"].isdigit()
            for key in ("price", "qty"):
                if key in cmd:
                    assert isinstance(cmd[key], str) and Decimal(cmd[key]) > 0
            if cmd["op"] == "new":
                assert cmd["account"].startswith("sim-")
                assert cmd["symbol"] in SYMBOLS
                if cmd["account"].startswith("sim-lp"):
                    assert cmd["post_only"] is True and cmd["tif"] == "GTC"
                else:
                    assert cmd["tif"] == "IOC"


def _snapshot(venue: Venue) -> tuple:
    books = {s: (b.depth(50), b.best_bid(), b.best_ask()) for s, b in venue.books.items()}
    orders = {oid: (o.price, o.open_qty, o.status) for oid, o in venue.orders.items()}
    accounts = {
        a: ({c: (w.balance, w.reserved, w.margin) for c, w in acct.wallets.items()},
            {s: (p.qty, p.cost, p.open_buy, p.open_sell) for s, p in acct.positions.items()})
        for a, acct in venue.accounts.items()
    }
    return books, orders, accounts, dict(venue.last), venue.now, copy.deepcopy(venue.limits.entries())


def test_step_only_reads_the_venue() -> None:
    run = start().run(2)
    before = _snapshot(run.venue)
    cmds = run.market.step(run.now + STEP, run.venue)
    assert cmds
    assert _snapshot(run.venue) == before


def test_same_seed_same_events_other_seed_other_events() -> None:
    a = start(SimConfig(seed=3)).run(10)
    b = start(SimConfig(seed=3)).run(10)
    c = start(SimConfig(seed=4)).run(10)
    assert a.log == b.log
    assert len(a.log) > 200
    assert a.log != c.log


@pytest.mark.parametrize("rate", [4.0, 300.0])
def test_commands_per_step_stay_bounded_after_a_long_pause(rate: float) -> None:
    config = SimConfig(taker_rate=rate)
    run = start(config).run(5)
    bound = len(SYMBOLS) * (2 * config.lp_accounts * config.levels + config.max_takers_per_step)
    assert run.max_commands <= bound
    cmds = run.step(run.now + 10 * SECOND)  # the engine thread stalled for 10 s
    takers = [c for c in cmds if c["op"] == "new" and c["account"] == "sim-taker"]
    assert len(cmds) <= bound
    assert len(takers) <= len(SYMBOLS) * config.max_takers_per_step
    run.run(5)
    assert run.crossed == 0 and not run.rejected


def test_a_higher_taker_rate_trades_that_much_more_in_an_orderly_book() -> None:
    calm = start(SimConfig(symbols=("BTC-USD",))).run(20)
    busy = start(SimConfig(symbols=("BTC-USD",), taker_rate=400)).run(20)
    assert busy.market.stats["taker"] >= 60 * calm.market.stats["taker"]  # 100x the rate: not clipped per step
    assert busy.trades["BTC-USD"] >= 60 * calm.trades["BTC-USD"]
    assert busy.crossed == 0 and not busy.rejected
    assert busy.two_sided["BTC-USD"] >= 0.98 * busy.steps


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_user_order_inside_the_spread_fills_within_seconds(symbol: str) -> None:
    run = start().run(3)
    venue = run.venue
    inst = venue.instruments[symbol]
    book = venue.books[symbol]
    bid, ask = book.best_bid(), book.best_ask()
    mid = (bid + ask) // 2
    qty = str(inst.lot_size * 10)
    events = run.user({"op": "new", "id": "1", "account": "alice", "symbol": symbol, "side": "buy",
                       "type": "limit", "price": str(inst.price(mid)), "qty": qty, "tif": "GTC"})
    assert not any(isinstance(e, OrderRejected) for e in events)
    placed = run.now
    while "1" in venue.orders and run.now - placed < 20 * SECOND:
        run.step()
    assert "1" not in venue.orders, f"{symbol}: a bid at mid still open after 20 s"
    seconds = (run.now - placed) / SECOND
    assert seconds <= 20
    assert venue.accounts["alice"].positions[symbol].qty == 10
    # and a marketable order fills at once, at the touch
    events = run.user({"op": "new", "id": "2", "account": "alice", "symbol": symbol, "side": "sell",
                       "type": "market", "qty": qty})
    assert sum(e.qty for e in events if isinstance(e, OrderFilled)) == 10


def test_halted_symbol_gets_no_new_orders_and_resumes() -> None:
    run = start().run(2)
    run.venue.halt("ETH-USD")
    for _ in range(20):
        cmds = run.step()
        assert not any(c.get("symbol") == "ETH-USD" for c in cmds)
        eth_ids = {o.id for o in run.venue.orders.values() if o.symbol == "ETH-USD"}
        assert not any(c["op"] == "amend" and c["id"] in eth_ids for c in cmds)
    trades = run.trades["ETH-USD"]
    run.venue.resume("ETH-USD")
    run.run(5)
    assert run.trades["ETH-USD"] > trades
    assert not run.rejected


def test_kill_switch_silences_the_market() -> None:
    run = start().run(1)
    commands.apply(run.venue, {"op": "kill", "on": True, "ts": run.now})
    assert all(run.step() == [] for _ in range(10))
    commands.apply(run.venue, {"op": "kill", "on": False, "ts": run.now})
    run.run(2)
    assert all(run.two_sided[s] for s in SYMBOLS)


def test_a_restarted_market_cancels_leftovers_and_does_not_reuse_ids() -> None:
    first = start().run(2)
    old = {oid for oid, o in first.venue.orders.items() if o.account.startswith("sim-")}
    assert old
    second = Run(first.venue, SimulatedMarket(first.venue.instruments, SimConfig()), now=first.now + 5 * SECOND)
    cmds = second.step()
    assert {c["id"] for c in cmds if c["op"] == "cancel"} == old
    second.run(3)
    assert not second.rejected  # no duplicate ids
    assert not old & set(second.venue.orders)


def test_inventory_skews_quotes_down_when_long() -> None:
    config = SimConfig(symbols=("BTC-USD",), lp_accounts=1, taker_rate=0, requote_bps=0.5)
    run = start(config, Manual(BTC_USD=60_000)).run(1)
    venue = run.venue
    bid_before = venue.books["BTC-USD"].best_bid()
    ask_before = venue.books["BTC-USD"].best_ask()
    # a user sells into the provider's bids: the provider gets long and leans its quotes lower
    run.user({"op": "new", "id": "1", "account": "bob", "symbol": "BTC-USD", "side": "sell", "type": "market",
              "qty": "3"})
    assert venue.accounts["sim-lp-1"].positions["BTC-USD"].qty > 0
    run.run(0.5)
    assert venue.books["BTC-USD"].best_ask() < ask_before
    assert venue.books["BTC-USD"].best_bid() <= bid_before


def test_config_errors() -> None:
    venue = Venue()
    with pytest.raises(ValueError, match="DOGE-USD"):
        SimulatedMarket(venue.instruments, SimConfig(symbols=("DOGE-USD",)))
    market = SimulatedMarket(venue.instruments, SimConfig(symbols=("SOL-USD",)))
    assert market.symbols == ("SOL-USD",)
    # by default: the three defaults the venue lists, or the data's symbols
    assert SimulatedMarket(venue.instruments).symbols == SYMBOLS
    two = {s: i for s, i in venue.instruments.items() if s != "SOL-USD"}
    assert SimulatedMarket(two).symbols == ("BTC-USD", "ETH-USD")
    feed = DataFeed(DATA / "btc_trades.parquet")
    assert SimulatedMarket(venue.instruments, source=feed).symbols == ("BTC-USD",)
    with pytest.raises(ValueError, match="none of"):
        SimulatedMarket({"SOL-USD": venue.instruments["SOL-USD"]}, source=feed)


# -- price sources -------------------------------------------------------------------------


def test_random_walk_is_seeded_and_scaled_by_time() -> None:
    config = SimConfig()
    a, b = RandomWalk.from_config(config), RandomWalk.from_config(config)
    path = [a.value("BTC-USD", T0 + k * SECOND) for k in range(100)]
    assert path == [b.value("BTC-USD", T0 + k * SECOND) for k in range(100)]
    assert a.value("DOGE-USD", T0) is None
    assert isinstance(a.price("ETH-USD", T0), Decimal)
    # one-second log returns have the configured (demo) volatility, roughly
    walk = RandomWalk({"X": "100"}, {"X": 0.6}, seed=1, vol_multiplier=4.0)
    prices = [walk.value("X", T0 + k * SECOND) for k in range(4001)]
    import math
    rets = [math.log(q / p) for p, q in zip(prices, prices[1:])]
    sd = (sum(r * r for r in rets) / len(rets)) ** 0.5
    expected = 0.6 * 4.0 / math.sqrt(365 * 86400)
    assert 0.9 * expected < sd < 1.1 * expected


def test_random_walk_caps_long_gaps() -> None:
    short = RandomWalk({"X": "100"}, {"X": 0.6}, seed=1, max_gap_s=5)
    long = RandomWalk({"X": "100"}, {"X": 0.6}, seed=1, max_gap_s=5)
    short.value("X", T0), long.value("X", T0)
    assert short.value("X", T0 + 5 * SECOND) == long.value("X", T0 + 3600 * SECOND)


def test_data_feed_walks_each_bar_open_low_high_close() -> None:
    minute = 60 * SECOND
    frame = pl.DataFrame({
        "ts": [T0, T0 + minute, T0 + 2 * minute],
        "symbol": ["X"] * 3,
        "open": [100.0, 105.0, 96.0], "high": [110.0, 106.0, 97.0], "low": [95.0, 94.0, 90.0],
        "close": [105.0, 96.0, 91.0], "volume": [1.0, 1.0, 1.0],
    })
    feed = DataFeed(frame, speed=1.0, start_ns=T0)
    at = lambda seconds: feed.value("X", T0 + int(seconds * SECOND))  # noqa: E731
    assert at(0) == 100.0 and at(15) == 95.0 and at(30) == pytest.approx(102.5) and at(45) == 110.0
    assert at(59.999) == pytest.approx(105.0, abs=0.01)
    assert at(60) == 105.0 and at(75) == 106.0 and at(105) == 94.0  # a down bar goes to the high first
    assert at(30) == 94.0  # time does not run backwards
    assert not feed.done
    assert at(180) == 91.0 and feed.done
    assert at(10_000) == 91.0  # exhausted: holds the last price
    assert feed.value("Y", T0) is None


def test_data_feed_trades_speed_and_chunks() -> None:
    frame = pl.DataFrame({
        "ts": [T0 + k * SECOND for k in range(10)] + [T0 + 5 * SECOND],
        "symbol": ["A"] * 10 + ["B"],
        "price": [float(100 + k) for k in range(10)] + [7.0],
    })
    for chunk in (2, 3, 4096):
        feed = DataFeed(frame, speed=2.0, chunk=chunk)
        start = 5 * T0
        assert feed.value("A", start) == 100.0
        assert feed.value("B", start) is None  # B has no trade yet
        assert feed.value("A", start + SECOND) == 102.0  # 2 s of data per second
        assert feed.value("A", start + 2 * SECOND + SECOND // 2) == 105.0
        assert feed.value("B", start + 3 * SECOND) == 7.0
        assert feed.value("A", start + SECOND) == 105.0  # time does not run backwards
        assert feed.price("A", start + 60 * SECOND) == Decimal("109.0") and feed.done


def test_market_follows_a_bar_file() -> None:
    feed = DataFeed(DATA / "btc_bars_1m.csv", speed=60)  # one bar per second
    run = start(SimConfig(symbols=("BTC-USD",)), feed)
    worst = 0.0
    for second in range(60):
        run.run(1)
        fair = feed.value("BTC-USD", run.now)
        last = float(run.venue.instruments["BTC-USD"].price(run.venue.last["BTC-USD"]))
        worst = max(worst, abs(last / fair - 1))
    assert worst < 0.01
    closes = pl.read_csv(DATA / "btc_bars_1m.csv")["close"]
    assert abs(float(run.venue.instruments["BTC-USD"].price(run.venue.last["BTC-USD"])) / closes[59] - 1) < 0.01
    assert not run.rejected and run.crossed == 0
    assert run.trades["BTC-USD"] > 60


def test_market_follows_a_trade_file_and_catches_up_with_jumps() -> None:
    feed = DataFeed(DATA / "btc_trades.parquet", speed=20)
    run = start(SimConfig(symbols=("BTC-USD",)), feed).run(40)
    last = float(run.venue.instruments["BTC-USD"].price(run.venue.last["BTC-USD"]))
    assert abs(last / feed.value("BTC-USD", run.now) - 1) < 0.01
    assert not run.rejected
    # a 4% jump in the data: quotes stay inside the price band and the market follows
    jump = pl.DataFrame({"ts": [T0, T0 + 5 * SECOND], "symbol": ["BTC-USD"] * 2, "price": [60_000.0, 62_400.0]})
    run = start(SimConfig(symbols=("BTC-USD",)), DataFeed(jump, start_ns=T0)).run(10)
    last = float(run.venue.instruments["BTC-USD"].price(run.venue.last["BTC-USD"]))
    assert abs(last / 62_400 - 1) < 0.002
    assert not run.rejected and run.crossed == 0


class Manual:
    """A price source the test moves by hand."""

    def __init__(self, **prices: float) -> None:
        self.prices = {k.replace("_", "-"): Decimal(str(v)) for k, v in prices.items()}

    def price(self, symbol: str, now_ns: int) -> Decimal | None:
        return self.prices.get(symbol)


def test_quotes_step_around_orders_others_rest_inside_the_spread() -> None:
    source = Manual(BTC_USD=60_000)
    assert isinstance(source, PriceSource)
    run = start(SimConfig(symbols=("BTC-USD",), taker_rate=0), source).run(1)
    venue = run.venue
    bid = venue.books["BTC-USD"].best_bid()
    run.user({"op": "new", "id": "1", "account": "carol", "symbol": "BTC-USD", "side": "sell", "type": "limit",
              "price": str(venue.instruments["BTC-USD"].price(bid + 1)), "qty": "0.001"})
    source.prices["BTC-USD"] = Decimal(60_030)  # +5 bps: the providers' bids would cross carol's ask
    run.run(1)
    assert "1" in venue.orders  # post-only quotes never take it
    assert venue.books["BTC-USD"].best_bid() == bid  # they queue just below it instead
    assert not run.rejected and run.crossed == 0


@pytest.mark.parametrize("move", [0.08, -0.08])
def test_a_jump_beyond_the_price_band_is_followed_in_band_sized_steps(move: float) -> None:
    source = Manual(BTC_USD=60_000)
    run = start(SimConfig(symbols=("BTC-USD",)), source).run(2)
    source.prices["BTC-USD"] = Decimal(60_000 * (1 + move))
    run.run(15)
    last = float(run.venue.instruments["BTC-USD"].price(run.venue.last["BTC-USD"]))
    assert abs(last / (60_000 * (1 + move)) - 1) < 0.002
    assert not run.rejected and run.crossed == 0
    assert run.venue.halt_reason("BTC-USD") is None  # 8% stays under the 10% circuit breaker
