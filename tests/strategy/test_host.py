"""The live host on a real venue, driven like the engine thread drives it (no daemon process)."""

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradsys.daemon.strategies import StrategyHost, StrategyRequestError
from tradsys.engine import Event, OrderRejected, Venue, VenueConfig
from tradsys.engine.commands import apply
from tradsys.engine.strategy import Param, Strategy

SEC = 1_000_000_000
FOLLOWER = Path(__file__).parents[2] / "examples" / "strategies" / "signal_follower.py"


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def upsert_strategy(self, id: str, kind: str, params: dict, state: str, account: str | None = None, ts: int = 0) -> None:
        self.rows[id] = {"id": id, "kind": kind, "params": params, "state": state, "account": account, "created_ns": ts,
                         "updated_ns": ts}

    def get_strategy(self, id: str) -> dict | None:
        return self.rows.get(id)

    def list_strategies(self, account: str | None = None, state: str | None = None) -> list[dict]:
        return [r for r in self.rows.values() if state is None or r["state"] == state]


class Driver:
    """Ticks the host and applies its commands, then hands the batch to its listener."""

    def __init__(self, host: StrategyHost, venue: Venue) -> None:
        self.host, self.venue, self.now = host, venue, 1_000 * SEC
        self.events: list[Event] = []

    def tick(self, extra: list[dict] | None = None) -> None:
        """`extra` (someone else's commands) first, then what the strategies send."""
        self.now += SEC // 10
        batch = []
        for cmd in (extra or []) + self.host.step(self.now, self.venue):
            cmd["ts"] = self.now
            batch.append((cmd, apply(self.venue, cmd)))
            self.events += batch[-1][1]
        if batch:
            self.host.on_commit(batch, self.venue)

    def refusals(self, account: str) -> Counter[tuple[str, str, str]]:
        """(order id, request, reason) of each refusal `account` met."""
        return Counter((e.order_id, e.op, e.reason) for e in self.events
                       if isinstance(e, OrderRejected) and e.account == account)


class Exploder(Strategy):
    params = {"when": Param(int, 3, "timer calls before raising")}

    def on_start(self) -> None:
        self.n = 0
        self.ctx.set_timer("t", 0.1)

    def on_timer(self, name: str) -> None:
        self.n += 1
        if self.n == 1:
            self.ctx.buy(0.01, 59_000)
        if self.n == self.p.when:
            raise ZeroDivisionError("bad math")


def setup(kinds: dict | None = None) -> tuple[StrategyHost, Venue, Driver]:
    venue = Venue(config=VenueConfig(initial_balances={"USD": Decimal(1_000_000)}))
    host = StrategyHost(MemoryStore(), venue.instruments)
    if kinds:
        host.kinds = lambda: kinds  # type: ignore[method-assign]
    driver = Driver(host, venue)
    # someone else's market: a resting bid and ask, and a trade at 60,000
    driver.tick([
        {"op": "new", "id": "m1", "account": "mm", "symbol": "BTC-USD", "side": "buy", "price": "59990", "qty": "1"},
        {"op": "new", "id": "m2", "account": "mm", "symbol": "BTC-USD", "side": "sell", "price": "60010", "qty": "1"},
    ])
    return host, venue, driver


def test_market_making_quotes_and_requotes_after_a_fill() -> None:
    host, venue, driver = setup()
    inst = host.start("market_making", {"spread_bps": "4", "quantity": "0.01", "refresh_seconds": "1s"})
    for _ in range(3):
        driver.tick()
    mine = [o for o in venue.orders.values() if o.account == inst.account]
    assert sorted(o.side.value for o in mine) == ["buy", "sell"]
    bid = next(o for o in mine if o.side.value == "buy")
    assert bid.price == 5_998_800  # mid 60,000 - 2 bps = 59,988.00
    driver.tick([{"op": "new", "id": "t1", "account": "taker", "symbol": "BTC-USD", "side": "sell", "type": "market",
                  "qty": "1.01"}])  # the other bid (59,990) first, then ours
    driver.tick()
    assert host.status(inst.id)["position"] == "BTC-USD +0.01"
    ask = next(o for o in venue.orders.values() if o.account == inst.account and o.side.value == "sell")
    assert ask.price < 6_001_200  # skewed down against the long inventory
    host.stop(inst.id)
    driver.tick()
    assert not [o for o in venue.orders.values() if o.account == inst.account]
    assert host.status(inst.id)["state"] == "stopped"


def test_a_raising_strategy_is_stopped_and_cancelled_while_others_continue(caplog: pytest.LogCaptureFixture) -> None:
    host, venue, driver = setup()
    host.kinds = lambda: {"exploder": Exploder}  # type: ignore[method-assign]
    import tradsys.daemon.strategies as module

    original = module.load_strategy
    module.load_strategy = lambda kind: Exploder if kind == "exploder" else original(kind)  # type: ignore[assignment]
    try:
        bad = host.start("exploder", {})
        good = host.start("market_making", {"refresh_seconds": "0.1s"})
        for _ in range(8):
            driver.tick()
    finally:
        module.load_strategy = original  # type: ignore[assignment]
    assert host.status(bad.id)["state"] == "failed"
    assert "ZeroDivisionError: bad math" in host.status(bad.id)["error"]
    assert "Traceback" in caplog.text
    assert not [o for o in venue.orders.values() if o.account == bad.account]
    assert host.status(good.id)["state"] == "running"
    assert len([o for o in venue.orders.values() if o.account == good.account]) == 2
    assert host.store.rows[bad.id]["state"] == "failed"


def test_bad_requests_are_refused() -> None:
    host, _, _ = setup()
    with pytest.raises(StrategyRequestError, match="unknown strategy"):
        host.start("nope", {})
    with pytest.raises(StrategyRequestError, match="spread_bps"):
        host.start("market_making", {"spread_bps": "wide"})
    with pytest.raises(StrategyRequestError, match="unknown symbol"):
        host.start("market_making", {}, symbols=["XYZ-USD"])


def test_restore_restarts_running_instances() -> None:
    host, venue, driver = setup()
    inst = host.start("market_making", {"spread_bps": "6"}, account="mm-bot")
    driver.tick()
    fresh = StrategyHost(host.store, venue.instruments)
    assert fresh.restore() == 1
    restored = fresh.instances[inst.id]
    assert restored.account == "mm-bot" and restored.params["spread_bps"] == 6.0
    driver.host = fresh
    driver.tick()
    driver.tick()
    mine = [o for o in venue.orders.values() if o.account == "mm-bot"]
    assert len(mine) == 2 and all(o.id.startswith(f"st{inst.id}-") for o in mine)


def test_a_signal_that_comes_before_the_launch_reaches_the_strategy_once_it_runs() -> None:
    """StartStrategy answers before the engine's next tick launches the instance: a peer's signal in
    between waits for the launch (one for another symbol is not its business)."""
    host, _, driver = setup()
    published: list[dict] = []
    host.publish = published.append
    inst = host.start(f"{FOLLOWER}:SignalFollower", {"quantity": "0.01"})
    host.on_signal({"symbol": "ETH-USD", "side": "sell", "strength": 0.9, "sender": "desk"})
    host.on_signal({"symbol": "BTC-USD", "side": "buy", "strength": 0.9, "sender": "desk"})
    for _ in range(3):
        driver.tick()
    assert host.status(inst.id)["position"] == "BTC-USD +0.01"
    assert [(p["side"], p["reason"], p["price"]) for p in published] == [("buy", "filled", "60010.0")]


def lone_market() -> tuple[StrategyHost, Venue, Driver]:
    """A trade at 60,000 and an empty book: the market maker's quotes will be the only ones."""
    venue = Venue(config=VenueConfig(initial_balances={"USD": Decimal(1_000_000)}))
    host = StrategyHost(MemoryStore(), venue.instruments)
    driver = Driver(host, venue)
    driver.tick([
        {"op": "new", "id": "m1", "account": "a", "symbol": "BTC-USD", "side": "buy", "price": "60000", "qty": "0.001"},
        {"op": "new", "id": "m2", "account": "b", "symbol": "BTC-USD", "side": "sell", "price": "60000", "qty": "0.001"},
    ])
    return host, venue, driver


def market(side: str, qty: str, n: int) -> dict:
    return {"op": "new", "id": f"t{n}", "account": "taker", "symbol": "BTC-USD", "side": side, "type": "market",
            "qty": qty}


def quotes(venue: Venue, account: str) -> dict[str, tuple[int | None, int]]:
    """The account's open orders at the venue: id -> (price, open lots)."""
    return {o.id: (o.price, o.open_qty) for o in venue.orders.values() if o.account == account}


def view(host: StrategyHost, sid: str) -> dict[str, tuple[int | None, int]]:
    """The same, as the strategy sees them."""
    ctx = host.instances[sid].runner.ctx  # type: ignore[union-attr]
    return {o.id: (None if o.price is None else round(o.price / 0.01), round(o.open_qty / 0.001))
            for o in ctx.open_orders()}


def quoting(refresh: str) -> tuple[StrategyHost, Venue, Driver, Any, str]:
    """A market maker quoting alone, whose quotes move with a fill of half of one (0.2 bp moves a
    quote); and the id of its bid."""
    host, venue, driver = lone_market()
    inst = host.start("market_making", {"spread_bps": "4", "quantity": "0.01", "max_position": "0.02",
                                        "requote_bps": "0.2", "refresh_seconds": refresh})
    driver.tick()
    (bid,) = [o.id for o in venue.orders.values() if o.account == inst.account and o.side.value == "buy"]
    return host, venue, driver, inst, bid


def test_a_quote_filled_while_its_amend_is_on_the_way_is_replaced() -> None:
    host, venue, driver, inst, bid = quoting("0.2s")
    driver.tick([market("sell", "0.004", 1)])  # part of the bid: the market maker moves it and restores its size...
    driver.tick([market("sell", "0.006", 2)])  # ...but the rest fills before that amend arrives
    for _ in range(10):
        driver.tick()
    assert bid not in venue.orders
    assert sorted(venue.orders[i].side.value for i in quotes(venue, inst.account)) == ["buy", "sell"]
    assert view(host, inst.id) == quotes(venue, inst.account)
    assert max(driver.refusals(inst.account).values(), default=0) <= 1


def test_a_quote_whose_amend_was_refused_is_replaced_not_amended_again() -> None:
    host, venue, driver, inst, bid = quoting("10s")
    assert venue.orders[bid].price == 5_998_800
    driver.tick([market("buy", "0.005", 1)])  # short 0.005: both quotes move up, the bid to 59,991
    driver.tick([{"op": "new", "id": "a1", "account": "other", "symbol": "BTC-USD", "side": "sell", "price": "59990",
                  "qty": "0.001"}])  # an ask the moved bid would take
    assert driver.refusals(inst.account) == Counter({(bid, "amend", "post_only"): 1})
    for _ in range(5):
        driver.tick()
    assert bid not in venue.orders
    bids = [o for o in venue.orders.values() if o.account == inst.account and o.side.value == "buy"]
    assert len(bids) == 1 and bids[0].price is not None and bids[0].price < 5_999_000  # below the best ask
    assert view(host, inst.id) == quotes(venue, inst.account)
    assert sum(driver.refusals(inst.account).values()) == 1


def test_new_quotes_refused_again_wait_for_the_next_refresh() -> None:
    host, venue, driver = lone_market()
    inst = host.start("market_making", {"spread_bps": "4", "quantity": "0.01", "refresh_seconds": "1s"})
    driver.tick()
    driver.tick([{"op": "kill", "on": True}])  # cancels the quotes and refuses every new order
    for _ in range(30):  # three refreshes
        driver.tick()
    refused = driver.refusals(inst.account)
    assert set(refused) == {(oid, "new", "kill_switch") for oid, _, _ in refused}
    assert 0 < len(refused) <= 2 * 2 * 4  # two tries a side at once, and again after each refresh
    driver.tick([{"op": "kill", "on": False}])
    for _ in range(10):
        driver.tick()
    assert len(quotes(venue, inst.account)) == 2
