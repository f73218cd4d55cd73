"""Data as other tools write it (freqtrade, Binance public data, monthly directories and globs) gives
the same fills as the same bars in the canonical parquet."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import polars as pl
import pytest

from tradsys.backtest import BacktestEngine
from tradsys.data import DataError, load_market_data

T0_MS = 1_704_067_200_000  # 2024-01-01
MIN_MS = 60_000
ROWS = 600
FEB_MS = 1_706_745_600_000  # 2024-02-01


def canonical(symbol: str = "BTC-USD", start_ms: int = T0_MS, rows: int = ROWS) -> pl.DataFrame:
    """A deterministic wave of 1-minute bars that makes sma_cross 3/8 trade often."""
    closes = [round(100 + 5 * math.sin(i / 7) + 2 * math.sin(i / 2.3), 2) for i in range(rows)]
    opens = [closes[0]] + closes[:-1]
    return pl.DataFrame({
        "ts": [(start_ms + i * MIN_MS) * 10**6 for i in range(rows)], "symbol": [symbol] * rows,
        "open": opens, "high": [max(o, c) + 0.25 for o, c in zip(opens, closes)],
        "low": [min(o, c) - 0.25 for o, c in zip(opens, closes)], "close": closes,
        "volume": [1.0 + (i % 5) for i in range(rows)],
    })


def fills(source: object, symbol: str | None = None, **load: str) -> pl.DataFrame:
    engine = BacktestEngine(100_000.0)
    engine.add_strategy("sma_cross", {"fast": 3, "slow": 8})
    engine.load_data(load_market_data(source, symbol, **load))  # type: ignore[arg-type]
    return engine.run().fills.drop("time")


def freqtrade_frame(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.from_epoch("ts", time_unit="ns").dt.replace_time_zone("UTC").alias("date"),
                        "open", "high", "low", "close", "volume")


def binance_rows(frame: pl.DataFrame, unit: int = 1) -> list[str]:
    """Binance klines CSV lines: no header, 12 columns, open time in ms (unit=1) or us (unit=1000)."""
    lines = []
    for ts, _, o, h, lo, c, v in frame.iter_rows():
        ms = ts // 10**6
        lines.append(f"{ms * unit},{o},{h},{lo},{c},{v},{(ms + MIN_MS - 1) * unit},{v * c},7,{v / 2},{v * c / 2},0")
    return lines


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = tmp_path_factory.mktemp("canon") / "bars.parquet"
    canonical().write_parquet(path)
    result = fills(path)
    assert result.height >= 10
    return result


def test_freqtrade_feather_json_and_parquet(tmp_path: Path, expected: pl.DataFrame) -> None:
    ft = freqtrade_frame(canonical())
    ft.write_ipc(tmp_path / "BTC_USD-1m.feather")
    ft.write_parquet(tmp_path / "BTC_USD-1m.parquet")
    rows = [[ts // 10**6, o, h, lo, c, v] for ts, _, o, h, lo, c, v in canonical().iter_rows()]
    (tmp_path / "BTC_USD-1m.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "BTC_USD-1m.json.gz", "wt") as f:
        json.dump(rows, f)
    for name in ("BTC_USD-1m.feather", "BTC_USD-1m.parquet", "BTC_USD-1m.json", "BTC_USD-1m.json.gz"):
        assert load_market_data(tmp_path / name).symbols == ("BTC-USD",)
        assert fills(tmp_path / name).equals(expected), name


def test_symbol_comes_from_the_flag_then_the_name_else_the_error_names_the_flag(tmp_path: Path) -> None:
    ft = freqtrade_frame(canonical(rows=20))
    ft.write_ipc(tmp_path / "BTC_USDT_USDT-1h-futures.feather")
    ft.write_ipc(tmp_path / "prices.feather")
    assert load_market_data(tmp_path / "BTC_USDT_USDT-1h-futures.feather").symbols == ("BTC-USDT",)
    assert load_market_data(tmp_path / "prices.feather", "ETH-BTC").symbols == ("ETH-BTC",)
    assert load_market_data(tmp_path / "BTC_USDT_USDT-1h-futures.feather", "X-Y").symbols == ("X-Y",)
    with pytest.raises(DataError, match="pass --symbol"):
        load_market_data(tmp_path / "prices.feather")


@pytest.mark.parametrize("unit", [1, 1000], ids=["ms", "us"])
def test_binance_klines_csv(tmp_path: Path, expected: pl.DataFrame, unit: int) -> None:
    path = tmp_path / "BTCUSD-1m-2024-01.csv"
    path.write_text("\n".join(binance_rows(canonical(), unit)) + "\n")
    md = load_market_data(path)
    assert (md.kind, md.symbols, md.rows) == ("bars", ("BTC-USD",), ROWS)
    assert fills(path).equals(expected)


def test_monthly_files_as_a_directory_or_a_glob_are_one_series(tmp_path: Path) -> None:
    """January in ms and February in us (Binance changed units in 2025), read as one series."""
    whole = pl.concat([canonical(), canonical(start_ms=FEB_MS)])
    whole.write_parquet(tmp_path / "whole.parquet")
    want = fills(tmp_path / "whole.parquet")
    months = tmp_path / "months"
    months.mkdir()
    (months / "BTCUSD-1m-2024-02.csv").write_text("\n".join(binance_rows(canonical(start_ms=FEB_MS), 1000)) + "\n")
    (months / "BTCUSD-1m-2024-01.csv").write_text("\n".join(binance_rows(canonical())) + "\n")
    (months / "README").write_text("not data")
    md = load_market_data(months)
    assert md.rows == 2 * ROWS and md.name == "months (2 files)"
    assert md.collect()["ts"].is_sorted()
    assert fills(months).equals(want)
    assert fills(str(months / "BTCUSD-1m-2024-0*.csv")).equals(want)
    with pytest.raises(DataError, match="no data files match"):
        load_market_data(str(months / "ETH*.csv"))


def test_binance_trades_csv_and_mixed_kinds(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-trades-2024-01.csv"
    path.write_text(f"1,100.5,0.25,25.125,{T0_MS},True,True\n2,100.75,0.5,50.375,{T0_MS + 1},False,True\n")
    df = load_market_data(path).collect()
    assert df["symbol"].to_list() == ["BTC-USDT"] * 2
    assert df["side"].to_list() == ["sell", "buy"]
    assert df["qty"].to_list() == [0.25, 0.5]
    agg = tmp_path / "BTCUSDT-aggTrades-2024-01.csv"
    agg.write_text(f"1,100.5,0.25,1,2,{T0_MS},false,true\n")
    assert load_market_data(agg).collect()["side"].to_list() == ["buy"]
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    path.rename(mixed / path.name)
    (mixed / "BTCUSDT-1m-2024-01.csv").write_text("\n".join(binance_rows(canonical(rows=3))) + "\n")
    with pytest.raises(DataError, match="give files of one kind"):
        load_market_data(mixed)
