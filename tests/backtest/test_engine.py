"""Determinism, vectorised == per-bar decisions, containment of a failing strategy, accounting."""

from pathlib import Path

import polars as pl
import pytest

from tests.backtest.helpers import bars
from tradsys.backtest import BacktestEngine
from tradsys.engine.strategy import Param, ParamError, Strategy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def run(strategy: str | type[Strategy], data: object, params: dict | None = None, **options: object):  # type: ignore[no-untyped-def]
    engine = BacktestEngine(1_000_000, **options)
    engine.add_strategy(strategy, params)
    engine.load_data(data)  # type: ignore[arg-type]
    return engine, engine.run()


def test_same_fills_twice() -> None:
    _, a = run("market_making", EXAMPLES / "btc_trades.parquet", {"refresh_seconds": "1s", "spread_bps": 2})
    _, b = run("market_making", EXAMPLES / "btc_trades.parquet", {"refresh_seconds": "1s", "spread_bps": 2})
    assert a.fills.height > 0
    assert a.fills.equals(b.fills)
    assert a.metrics == b.metrics


@pytest.mark.parametrize(("fast", "slow"), [(3, 8), (5, 20)])
def test_vectorised_sma_cross_matches_per_bar_callbacks(fast: int, slow: int) -> None:
    params = {"fast": fast, "slow": slow, "quantity": 0.5}
    _, vec = run("sma_cross", EXAMPLES / "btc_bars_1m.csv", params)
    _, event = run("sma_cross", EXAMPLES / "btc_bars_1m.csv", params, vectorised=False)
    assert vec.info["mode"] == "vectorised" and event.info["mode"] == "event"
    assert vec.fills.height > 2
    assert vec.fills.drop("order_id").equals(event.fills.drop("order_id"))


@pytest.mark.parametrize("symbols", [["BTC-USD"], None], ids=["one-given", "all-in-the-data"])
def test_vectorised_matches_per_bar_callbacks_beside_another_symbol_with_longer_bars(symbols: list[str] | None) -> None:
    btc = pl.read_csv(EXAMPLES / "btc_bars_1m.csv")
    prices = ("open", "high", "low", "close")
    eth = btc.gather_every(2).with_columns(pl.lit("ETH-USD").alias("symbol"), *(pl.col(c) / 20 for c in prices))
    data = pl.concat([btc, eth]).sort("ts", maintain_order=True)
    params = {"fast": 3, "slow": 8, "quantity": 0.5}
    results = []
    for vectorised in (True, False):
        engine = BacktestEngine(1_000_000, vectorised=vectorised)
        engine.add_strategy("sma_cross", params, symbols=symbols)
        engine.load_data(data)
        results.append(engine.run())
    vec, event = results
    assert vec.info["mode"] == "vectorised" and vec.fills.height > 2
    assert vec.fills.drop("order_id").equals(event.fills.drop("order_id"))


def test_runs_again_on_the_data_it_loaded() -> None:
    engine, first = run("sma_cross", EXAMPLES / "btc_bars_1m.csv", {"fast": 3, "slow": 8, "quantity": 0.5})
    again = engine.run()
    assert first.fills.height > 2
    assert again.fills.equals(first.fills) and again.metrics == first.metrics


def test_equity_matches_the_venue_accounting() -> None:
    engine, result = run("mean_reversion", EXAMPLES / "btc_bars_1m.csv", {"window": 10, "entry_z": 1.5, "quantity": 0.1})
    assert result.fills.height > 0
    venue = engine.venue
    acct = venue.accounts["bt-1"]
    wallet = acct.wallets["USD"]
    pos = acct.positions["BTC-USD"]
    close = pl.read_csv(EXAMPLES / "btc_bars_1m.csv").get_column("close")[-1]
    inst = venue.instruments["BTC-USD"]
    unrealized = pos.qty * float(inst.lot_size) * close - pos.cost * float(inst.lot_size * inst.tick_size)
    assert result.metrics["final_equity"] == pytest.approx(wallet.balance / 1e8 + unrealized, abs=1e-6)


class Boom(Strategy):
    params = {"after": Param(int, 3, "bars before raising")}

    def on_start(self) -> None:
        self.n = 0

    def on_bar(self, bar) -> None:  # type: ignore[no-untyped-def]
        self.n += 1
        if self.n == 1:
            self.ctx.buy(1, 1.0)  # rests far below the market
        if self.n == self.p.after:
            raise RuntimeError("boom")


def test_a_raising_strategy_stops_and_its_orders_are_cancelled_while_others_go_on() -> None:
    engine = BacktestEngine(1_000_000)
    engine.add_strategy(Boom, name="boom")
    engine.add_strategy("sma_cross", {"fast": 3, "slow": 8, "quantity": 0.1}, name="sma")
    engine.load_data(EXAMPLES / "btc_bars_1m.csv")
    result = engine.run()
    states = {s["name"]: s for s in result.strategies}
    assert states["boom"]["state"] == "failed" and "RuntimeError: boom" in states["boom"]["error"]
    assert states["sma"]["state"] == "stopped"
    assert result.fills.filter(pl.col("strategy") == "sma").height > 2
    assert not [o for o in engine.venue.orders.values() if o.account == "bt-1"]
    assert any("boom" in text for name, _, text in result.logs if name == "boom")


def test_parameters_are_validated_before_running() -> None:
    engine = BacktestEngine()
    with pytest.raises(ParamError, match="fast"):
        engine.add_strategy("sma_cross", {"fast": "ten"})
    with pytest.raises(ParamError, match="unknown parameter"):
        engine.add_strategy("sma_cross", {"fats": 3})


def test_user_strategy_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "from tradsys.engine.strategy import Strategy, Param\n"
        "class BuyOnce(Strategy):\n"
        "    params = {'qty': Param(float, 0.5, 'size')}\n"
        "    def on_bar(self, bar):\n"
        "        if self.ctx.position() == 0 and not self.ctx.open_orders():\n"
        "            self.ctx.buy(self.p.qty)\n"
    )
    _, result = run(f"{path}:BuyOnce", bars([(100, 101, 99, 100), (102, 103, 101, 102), (104, 106, 103, 105)]))
    assert result.fills.get_column("qty").to_list() == [0.5]


def test_outputs(tmp_path: Path) -> None:
    _, result = run("sma_cross", EXAMPLES / "btc_bars_1m.csv", {"fast": 3, "slow": 8, "quantity": 0.1})
    written = result.write(tmp_path, "csv")
    assert {p.name for p in written} == {"fills.csv", "trades.csv", "equity.csv", "summary.json", "report.html"}
    assert pl.read_csv(tmp_path / "fills.csv").height == result.fills.height
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
