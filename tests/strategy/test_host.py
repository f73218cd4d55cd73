"""The live host on a real venue, driven like the engine thread drives it (no daemon process)."""

from decimal import Decimal
from typing import Any

import pytest

from tradsys.daemon.strategies import StrategyHost, StrategyRequestError
from tradsys.engine import Venue, VenueConfig
from tradsys.engine.commands import apply
from tradsys.engine.strategy import Param, Strategy

SEC = 1_000_000_000


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

    def tick(self, extra: list[dict] | None = None) -> None:
        self.now += SEC // 10
        batch = []
        for cmd in (extra or []) + self.host.step(self.now, self.venue):
            cmd["ts"] = self.now
            batch.append((cmd, apply(self.venue, cmd)))
        if batch:
            self.host.on_commit(batch, self.venue)


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
