"""Symbols the venue does not list (BTC-USDT, ETH-BTC): tick and lot from the data or the flags, the
capital in the quote currency."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.backtest.test_data_shapes import canonical, fills
from tradsys.backtest import BacktestEngine
from tradsys.backtest.instruments import increments
from tradsys.cli.app import app
from tradsys.data import DataError

runner = CliRunner()


def engine_on(frame: pl.DataFrame, **options: str) -> BacktestEngine:
    engine = BacktestEngine(100_000.0, **options)
    engine.add_strategy("sma_cross", {"fast": 3, "slow": 8, "quantity": 0.5})
    engine.load_data(frame)
    return engine


def test_a_usdt_pair_trades_with_the_capital_in_usdt(tmp_path: Path) -> None:
    canonical().write_parquet(tmp_path / "usd.parquet")
    canonical("BTC-USDT").write_parquet(tmp_path / "usdt.parquet")
    want = fills(tmp_path / "usd.parquet").with_columns(pl.lit("BTC-USDT").alias("symbol"))
    got = fills(tmp_path / "usdt.parquet")
    assert got.height > 0 and got.equals(want)
    engine = engine_on(canonical("BTC-USDT"))
    result = engine.run()
    assert result.info["rejections"] == {} and result.metrics["fills"] > 0
    assert engine.venue is not None and set(engine.venue.account("bt-1").wallets) == {"USDT"}


def test_eth_btc_gets_a_tick_from_its_prices() -> None:
    frame = canonical("ETH-BTC").with_columns((pl.col(c) / 2000).round(6) for c in ("open", "high", "low", "close"))
    engine = engine_on(frame)
    result = engine.run()
    inst = engine.venue.instruments["ETH-BTC"]  # type: ignore[union-attr]
    assert (inst.quote, inst.tick_size, inst.lot_size) == ("BTC", Decimal("0.000001"), Decimal("0.01"))  # tick x lot >= 1e-8
    assert result.metrics["fills"] > 0 and result.info["rejections"] == {}


def test_increments() -> None:
    bars = canonical(rows=10)
    assert increments(bars, "bars") == (2, 3)  # prices in cents, whole volumes: the defaults
    fine = bars.with_columns(pl.col("close") + 0.0005, pl.col("volume") / 10**5)
    assert increments(fine, "bars") == (4, 5)
    noisy = bars.with_columns(pl.col(c) / 3 for c in ("open", "high", "low", "close"))
    assert increments(noisy, "bars") == (3, 3)  # ~33: five significant digits
    small = pl.DataFrame({"price": [0.00001234, 0.00001236], "qty": [1e6, 2e6]})
    assert increments(small, "trades") == (8, 3)
    shib = canonical("SHIB-USDT", rows=20).with_columns((pl.col(c) / 10**7).round(8) for c in ("open", "high", "low",
                                                                                             "close"))
    engine = engine_on(shib)
    engine.run()
    inst = engine.venue.instruments["SHIB-USDT"]  # type: ignore[union-attr]
    assert (inst.tick_size, inst.lot_size) == (Decimal("1E-8"), Decimal("1"))  # tick x lot >= 1e-8


def test_flags_set_tick_and_lot_and_mixed_quotes_are_refused(tmp_path: Path) -> None:
    engine = engine_on(canonical("BTC-USDT"), tick_size="0.5", lot_size="0.1")
    result = engine.run()
    inst = engine.venue.instruments["BTC-USDT"]  # type: ignore[union-attr]
    assert (inst.tick_size, inst.lot_size) == (Decimal("0.5"), Decimal("0.1"))
    assert all((p * 2).is_integer() for p in result.fills["price"])
    both = pl.concat([canonical("BTC-USDT", rows=20), canonical("ETH-BTC", rows=20)])
    with pytest.raises(DataError, match="quoted in BTC, USDT"):
        engine_on(both).run()
    path = tmp_path / "BTC_USDT-1m.parquet"
    canonical("BTC-USDT").drop("symbol").write_parquet(path)
    ok = runner.invoke(app, ["backtest", "run", str(path), "-s", "sma_cross", "-p", "fast=3", "-p", "slow=8",
                             "--tick-size", "0.25", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["metrics"]["fills"] > 0
    bad = runner.invoke(app, ["backtest", "run", str(path), "-s", "sma_cross", "--lot-size", "-1"])
    assert bad.exit_code == 2 and "--lot-size must be a positive number" in bad.output
    assert "quote currency" in runner.invoke(app, ["backtest", "run", "--help"]).output
