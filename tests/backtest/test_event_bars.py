"""The event-driven bar loop: `on_bars` strategies (history as columns) take the decisions of `on_bar` ones."""

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tradsys.backtest import BacktestEngine
from tradsys.engine.strategy import BarData, Bars, Param, Strategy

ROOT = Path(__file__).resolve().parents[2]
BARS = ROOT / "examples" / "data" / "btc_bars_1m.csv"
SMA_COLUMNS = f"{ROOT / 'examples' / 'strategies' / 'sma_columns.py'}:SmaColumns"


def run(data: Any, *strategies: tuple[Any, dict[str, Any]], **options: Any) -> tuple[BacktestEngine, Any]:
    engine = BacktestEngine(1_000_000, **options)
    for strategy, params in strategies:
        engine.add_strategy(strategy, params)
    engine.load_data(data)
    return engine, engine.run()


@pytest.mark.parametrize(("fast", "slow"), [(3, 8), (5, 20), (10, 30)])
def test_a_file_strategy_reading_columns_fills_as_the_builtin(fast: int, slow: int) -> None:
    params = {"fast": fast, "slow": slow, "quantity": 0.5}
    _, builtin = run(BARS, ("sma_cross", params), vectorised=False)
    _, vectorised = run(BARS, ("sma_cross", params))
    _, from_file = run(BARS, (SMA_COLUMNS, params), vectorised=False)
    assert from_file.info["mode"] == "event" and vectorised.info["mode"] == "vectorised"
    assert builtin.fills.height > 2
    assert from_file.fills.drop("strategy").equals(builtin.fills.drop("strategy"))  # the names differ
    assert from_file.fills.drop("strategy", "order_id").equals(vectorised.fills.drop("strategy", "order_id"))
    assert from_file.metrics == builtin.metrics


STARTED: list[Any] = []
"""The strategy instances of the last runs, in the order they started."""


class Seen(Strategy):
    """Records what each bar callback saw: (symbol, n or None, close, the history's closes)."""

    seen: list[tuple[str, int | None, float, list[float]]]

    def on_start(self) -> None:
        self.seen = []
        STARTED.append(self)


class SeenBars(Seen):
    def on_bars(self, bars: Bars) -> None:
        n = bars.n
        self.seen.append((bars.symbol, n, bars.close[n - 1], bars.series("close").to_list()))
        assert bars is self.ctx.bars(bars.symbol)


class SeenBar(Seen):
    def on_bar(self, bar: BarData) -> None:
        self.seen.append((bar.symbol, None, bar.close, []))


def two_symbols() -> pl.DataFrame:
    btc = pl.read_csv(BARS)
    eth = btc.gather_every(2).with_columns(pl.lit("ETH-USD").alias("symbol"), pl.col("close") / 20)
    return pl.concat([btc, eth]).sort("ts", maintain_order=True)


@pytest.mark.parametrize("data", [BARS, "two"], ids=["one-symbol", "two-symbols"])
def test_on_bars_sees_each_bar_at_its_close_and_no_later_one(data: Any) -> None:
    frame = two_symbols() if data == "two" else pl.read_csv(BARS)
    STARTED.clear()
    run(frame, (SeenBars, {}), (SeenBar, {}))
    columns, objects = (s.seen for s in STARTED)
    assert [(s, c) for s, _, c, _ in columns] == [(s, c) for s, _, c, _ in objects]
    assert len(columns) == frame.height
    for symbol in set(frame.get_column("symbol")):
        mine = [(n, history) for s, n, _, history in columns if s == symbol]
        closes = frame.filter(pl.col("symbol") == symbol).get_column("close").to_list()
        assert [n for n, _ in mine] == list(range(1, len(closes) + 1))
        assert all(history == closes[:n] for n, history in mine[:50])


class WholeColumns(Seen):
    """Reads every column whole, as a careless strategy would (`closes[-1]`, `len(closes)`)."""

    def on_bars(self, bars: Bars) -> None:
        self.seen.append((bars.symbol, bars.n, 0.0, [(name, len(getattr(bars, name)), getattr(bars, name)[-1])
                                                     for name in ("ts", "end_ns", "open", "close", "close_ticks", "volume")]))


@pytest.mark.parametrize("data", [BARS, "two"], ids=["one-symbol", "two-symbols"])
def test_a_column_holds_the_closed_bars_and_none_to_come(data: Any) -> None:
    """No look-ahead: a column's last entry is the bar that just closed, in a backtest as live."""
    frame = two_symbols() if data == "two" else pl.read_csv(BARS)
    STARTED.clear()
    run(frame, (WholeColumns, {}))
    [strategy] = STARTED
    for symbol in set(frame.get_column("symbol")):
        rows = frame.filter(pl.col("symbol") == symbol)
        seen = [(n, columns) for s, n, _, columns in strategy.seen if s == symbol]
        assert [n for n, _ in seen] == list(range(1, rows.height + 1))
        for n, columns in seen:
            assert {name: length for name, length, _ in columns} == dict.fromkeys(("ts", "end_ns", "open", "close",
                                                                                   "close_ticks", "volume"), n)
            last = {name: value for name, _, value in columns}
            assert (last["close"], last["volume"]) == (rows["close"][n - 1], rows["volume"][n - 1])
        assert sorted({columns[0][2] for _, columns in seen}) == [columns[0][2] for _, columns in seen]  # ts rises


class Fails(Strategy):
    """Buys at its first bar; raises in on_bars at its fifth bar, or in on_fill (`in_fill`)."""

    in_fill = False

    def on_start(self) -> None:
        self.calls = 0
        STARTED.append(self)

    def on_bars(self, bars: Bars) -> None:
        self.calls += 1
        if self.calls == 1:
            self.ctx.buy(0.1)
        if self.calls == 5 and not self.in_fill:
            raise RuntimeError("boom")

    def on_fill(self, fill: Any) -> None:
        if self.in_fill:
            raise RuntimeError("boom")


class FailsInFill(Fails):
    in_fill = True


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside-another"])
@pytest.mark.parametrize(("cls", "where", "calls"), [(Fails, "on_bars", 5), (FailsInFill, "on_fill", 1)])
def test_a_strategy_that_raises_gets_no_more_bars_and_others_go_on(cls: type[Fails], where: str, calls: int,
                                                                   beside: bool) -> None:
    STARTED.clear()
    _, result = run(BARS, (cls, {}), *([(SeenBars, {})] if beside else []))
    failed = result.strategies[0]
    assert failed["state"] == "failed" and f"{where}: RuntimeError: boom" in failed["error"]
    assert STARTED[0].calls == calls
    if beside:
        assert result.strategies[1]["state"] == "stopped" and len(STARTED[1].seen) == result.info["rows"]


MINUTE_NS = 60 * 10**9


def bars_of(symbol: str, opens: list[float], every: int = 1) -> pl.DataFrame:
    """Flat bars (open = high = low = close) a minute apart, or `every` minutes apart, from 2024-01-01."""
    start = 1_704_067_200 * 10**9
    return pl.DataFrame({"ts": [start + i * every * MINUTE_NS for i in range(len(opens))], "symbol": symbol,
                         "open": opens, "high": opens, "low": opens, "close": opens, "volume": 10.0})


class CrossOrder(Strategy):
    """At the close of `at_symbol`'s bar number `at` (from 1), a market buy of one `buy_symbol`."""

    params = {"at_symbol": Param(str, "", "whose close"), "at": Param(int, 1, "which bar"),
              "buy_symbol": Param(str, "", "what to buy")}

    def on_bars(self, bars: Bars) -> None:
        if bars.symbol == self.p.at_symbol and bars.n == self.p.at:
            self.ctx.buy(1, symbol=self.p.buy_symbol)


@pytest.mark.parametrize(("eth_every", "at_symbol", "at", "buy_symbol", "price"), [
    (1, "BTC-USD", 2, "ETH-USD", 30.0),   # ETH's bar of the same minute opened before BTC's closed
    (1, "ETH-USD", 2, "BTC-USD", 300.0),  # and the other way round
    (2, "ETH-USD", 1, "BTC-USD", 300.0),  # a 2-minute ETH bar closes after two BTC bars opened
])
def test_an_order_made_at_one_symbols_close_fills_at_another_symbols_next_open(
        eth_every: int, at_symbol: str, at: int, buy_symbol: str, price: float) -> None:
    """The order is made at the close's time; it fills at the first open of its symbol at or after that
    time, never at a bar that opened before the order existed (look-ahead)."""
    btc = bars_of("BTC-USD", [100.0, 200.0, 300.0, 400.0, 500.0])
    eth = bars_of("ETH-USD", [10.0, 20.0, 30.0, 40.0, 50.0], every=eth_every)
    data = pl.concat([btc, eth]).sort("ts", maintain_order=True)
    _, result = run(data, (CrossOrder, {"at_symbol": at_symbol, "at": at, "buy_symbol": buy_symbol}),
                    vectorised=False)
    fills = result.fills.filter(pl.col("symbol") == buy_symbol)
    assert fills.get_column("price").to_list() == [price]
