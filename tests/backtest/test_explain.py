"""A run that sends no order or gets no fill says why; annualised metrics from a short span are marked."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
from rich.console import Console
from typer.testing import CliRunner

from tests.backtest.test_data_shapes import canonical
from tradsys.backtest import BacktestEngine
from tradsys.backtest.report import summary_table
from tradsys.cli.app import app

runner = CliRunner()
DAY_MS = 86_400_000


def run(frame: pl.DataFrame, params: dict, capital: float = 100_000.0) -> tuple[dict, list[str]]:
    engine = BacktestEngine(capital)
    engine.add_strategy("sma_cross", params)
    engine.load_data(frame)
    result = engine.run()
    return result.metrics, result.warnings


def test_a_strategy_needing_more_bars_than_the_data_have(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USD-1m.parquet"
    canonical().write_parquet(path)
    args = ["backtest", "run", str(path), "-s", "sma_cross", "-p", "fast=3", "-p", "slow=9000"]
    doc = runner.invoke(app, [*args, "--json"])
    assert doc.exit_code == 0, doc.output
    warnings = json.loads(doc.stdout)["warnings"]
    assert any("needs slow=9,000 bars and the data have 600 per symbol" in w for w in warnings), warnings
    assert "slow=9,000" in doc.stderr
    table = runner.invoke(app, [*args, "--no-progress"])
    assert table.exit_code == 0 and "slow=9,000" in table.stdout and "slow=9,000" in table.stderr


def test_a_bar_strategy_on_trades_is_told_to_make_bars() -> None:
    trades = pl.DataFrame({"ts": [i * 10**9 + 1_704_067_200 * 10**9 for i in range(50)], "symbol": ["BTC-USD"] * 50,
                           "price": [100.0 + i % 7 for i in range(50)], "qty": [1.0] * 50})
    metrics, warnings = run(trades, {"fast": 2, "slow": 3})
    assert metrics["fills"] == 0
    assert any("works on bars and the data are trades" in w and "--timeframe" in w for w in warnings), warnings


def test_refused_orders_are_counted_by_reason_with_a_hint() -> None:
    metrics, warnings = run(canonical(), {"fast": 3, "slow": 8, "quantity": 1.0}, capital=10.0)
    assert metrics["fills"] == 0
    assert any("orders were sent and none filled" in w for w in warnings), warnings
    refused = [w for w in warnings if "refused: insufficient_balance" in w]
    assert refused and "10.00 USD" in refused[0] and "--capital" in refused[0]


def test_short_spans_withhold_cagr_and_mark_annualised_figures() -> None:
    engine = BacktestEngine(100_000.0)
    engine.add_strategy("sma_cross", {"fast": 3, "slow": 8})
    engine.load_data(canonical())
    result = engine.run()
    assert result.metrics["cagr"] is None and result.metrics["sharpe"] is not None
    assert result.metrics["span_days"] < 1
    assert any("CAGR is withheld" in w for w in result.warnings)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(summary_table(result))
    text = console.export_text()
    assert "Sharpe (ann. from 0.4 d)" in text and "warning: the data span 0.4 days" in text
    daily = canonical(rows=60).with_columns(pl.Series("ts", [1_704_067_200 * 10**9 + i * DAY_MS * 10**6
                                                             for i in range(60)]))
    metrics, warnings = run(daily, {"fast": 3, "slow": 8})
    assert metrics["cagr"] is not None and metrics["span_days"] >= 59
    assert not any("withheld" in w for w in warnings)


def test_sweep_results_carry_their_warnings(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USD-1m.parquet"
    canonical().write_parquet(path)
    result = runner.invoke(app, ["backtest", "sweep", str(path), "-s", "sma_cross", "--grid", "slow=8,9000",
                                 "-p", "fast=3", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    by_slow = {r["params"]["slow"]: r["warnings"] for r in json.loads(result.stdout)["results"]}
    assert any("needs slow=9,000" in w for w in by_slow["9000"]) and not any("needs" in w for w in by_slow["8"])
