"""Loading market data files: kind detection, column aliases, ts units, checks and sorting."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from tradsys.data import DataError, MarketData, load_market_data

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
T = 1_704_067_200  # 2024-01-01T00:00:00Z in seconds
NS = 10**9


def bars(**overrides: list) -> pl.DataFrame:
    cols = {
        "ts": [T * NS, (T + 60) * NS, (T + 120) * NS],
        "symbol": ["BTC-USD"] * 3,
        "open": [100.0, 101.0, 102.0],
        "high": [101.5, 102.5, 103.0],
        "low": [99.5, 100.5, 101.0],
        "close": [101.0, 102.0, 102.5],
        "volume": [1.0, 2.0, 3.0],
    }
    cols.update(overrides)
    return pl.DataFrame({k: v for k, v in cols.items() if v is not None})


def trades(**overrides: list) -> pl.DataFrame:
    cols = {
        "ts": [T * NS, T * NS + 1, T * NS + 2],
        "symbol": ["ETH-USD"] * 3,
        "price": [3000.0, 3000.5, 2999.0],
        "qty": [0.1, 0.2, 0.3],
        "side": ["buy", "sell", "buy"],
    }
    cols.update(overrides)
    return pl.DataFrame({k: v for k, v in cols.items() if v is not None})


# -- kind and columns -------------------------------------------------------------------


def test_bars_are_detected_and_normalised() -> None:
    md = load_market_data(bars())
    assert isinstance(md, MarketData) and md.kind == "bars"
    assert isinstance(md.frame, pl.LazyFrame)
    assert md.symbols == ("BTC-USD",) and md.rows == 3
    df = md.collect()
    assert df.columns == ["ts", "symbol", "open", "high", "low", "close", "volume"]
    assert df.schema["ts"] == pl.Int64 and df.schema["close"] == pl.Float64
    assert df["ts"].to_list() == [T * NS, (T + 60) * NS, (T + 120) * NS]
    assert (md.start_ns, md.end_ns) == (T * NS, (T + 120) * NS)


def test_trades_are_detected_and_normalised() -> None:
    md = load_market_data(trades())
    assert md.kind == "trades" and md.symbols == ("ETH-USD",)
    df = md.collect()
    assert df.columns == ["ts", "symbol", "price", "qty", "side"]
    assert df["side"].to_list() == ["buy", "sell", "buy"]


def test_a_file_with_ohlc_and_a_price_column_is_bars() -> None:
    assert load_market_data(bars(price=[1.0, 2.0, 3.0])).kind == "bars"


def test_aliases_are_case_insensitive() -> None:
    frame = pl.DataFrame({
        "Timestamp": [T, T + 60], "Ticker": ["SOL-USD"] * 2, "O": [1.0, 2.0], "High": [2.0, 3.0],
        "LOW": [0.5, 1.5], "c": [2.0, 2.5], "Vol": [10.0, 11.0],
    })
    md = load_market_data(frame)
    assert md.kind == "bars" and md.symbols == ("SOL-USD",)
    assert md.collect()["volume"].to_list() == [10.0, 11.0]
    assert md.columns["ts"] == "Timestamp" and md.columns["low"] == "LOW"
    frame = pl.DataFrame({"TIME": [T], "pair": ["X"], "Price": [1.0], "Size": [2.0], "Side": ["S"]})
    df = load_market_data(frame).collect()
    assert df.row(0) == (T * NS, "X", 1.0, 2.0, "sell")
    for alias in ("amount", "quantity"):
        frame = pl.DataFrame({"datetime": [T], "symbol": ["X"], "price": [1.0], alias: [3.0]})
        assert load_market_data(frame).collect()["qty"].to_list() == [3.0]


def test_optional_columns_become_null() -> None:
    df = load_market_data(trades(qty=None, side=None)).collect()
    assert df["qty"].null_count() == 3 and df["side"].null_count() == 3
    assert load_market_data(bars(volume=None)).collect()["volume"].null_count() == 3


def test_symbol_argument_for_single_symbol_files_and_to_select() -> None:
    frame = trades(symbol=None)
    with pytest.raises(DataError, match=r"no symbol column .*pass --symbol \(symbol= in Python\)"):
        load_market_data(frame)
    md = load_market_data(frame, symbol="ETH-USD")
    assert md.symbols == ("ETH-USD",) and md.collect()["symbol"].to_list() == ["ETH-USD"] * 3
    mixed = trades(symbol=["A", "B", "A"])
    assert load_market_data(mixed).symbols == ("A", "B")
    picked = load_market_data(mixed, symbol="A")
    assert picked.symbols == ("A",) and picked.rows == 2
    with pytest.raises(DataError, match="no rows for symbol 'C'"):
        load_market_data(mixed, symbol="C")


# -- errors -------------------------------------------------------------------------------


def test_missing_price_names_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    trades(price=None, side=None).write_parquet(path)
    with pytest.raises(DataError) as err:
        load_market_data(path)
    assert str(err.value) == (
        "data.parquet: no price column for trades (have: ts, symbol, qty); bars need open, high, low, close"
    )


def test_partial_bars_name_the_missing_columns() -> None:
    with pytest.raises(DataError, match=r"bars need open, high, low, close; missing low, close \(have: ts, symbol, open, high"):
        load_market_data(bars(low=None, close=None))


def test_missing_ts_is_named() -> None:
    with pytest.raises(DataError, match="no ts column .*have: symbol, price"):
        load_market_data(trades(ts=None, qty=None, side=None))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_prices_must_be_positive_and_finite(bad: float) -> None:
    with pytest.raises(DataError, match="1 row with a price that is not positive and finite"):
        load_market_data(trades(price=[3000.0, bad, 2999.0]))
    with pytest.raises(DataError, match="with a low that is not positive"):
        load_market_data(bars(low=[99.5, bad, 101.0]))


def test_nulls_and_empty_and_bad_ts_are_refused() -> None:
    with pytest.raises(DataError, match="1 row without price"):
        load_market_data(trades(price=[3000.0, None, 2999.0]))
    with pytest.raises(DataError, match="1 row without ts"):
        load_market_data(trades(ts=[T, None, T + 1]))
    with pytest.raises(DataError, match="no rows"):
        load_market_data(trades().clear())
    with pytest.raises(DataError, match="ts is not an ISO-8601"):
        load_market_data(trades(ts=["yesterday", "today", "tomorrow"]))
    with pytest.raises(DataError, match="ts column 'ts' has type"):
        load_market_data(trades(ts=[True, False, True]))


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_market_data(tmp_path / "missing.csv")
    (tmp_path / "x.xlsx").write_text("{}")
    with pytest.raises(DataError, match="unknown file type '.xlsx'"):
        load_market_data(tmp_path / "x.xlsx")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="expected freqtrade candles"):
        load_market_data(tmp_path / "x.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data files in the directory"):
        load_market_data(tmp_path / "empty")
    with pytest.raises(DataError):
        load_market_data(42)  # type: ignore[arg-type]


# -- ts units and types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [T, T + 60],  # seconds
        [T * 1000, (T + 60) * 1000],  # milliseconds
        [T * 10**6, (T + 60) * 10**6],  # microseconds
        [T * NS, (T + 60) * NS],  # nanoseconds
        [float(T), float(T + 60)],  # float seconds
        [datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 1, 0, 1, tzinfo=timezone.utc)],
        [datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 1)],  # naive = UTC
        ["2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"],
        ["2024-01-01 00:00:00", "2024-01-01 00:01:00"],
        ["2024-01-01T01:00:00+01:00", "2024-01-01T01:01:00+01:00"],
    ],
)
def test_ts_units_and_types(values: list) -> None:
    df = load_market_data(trades(ts=values, symbol=["X"] * 2, price=[1.0, 2.0], qty=None, side=None)).collect()
    assert df["ts"].to_list() == [T * NS, (T + 60) * NS]


def test_fractional_seconds_and_dates() -> None:
    df = load_market_data(trades(ts=[T + 0.25, T + 0.5], symbol=["X"] * 2, price=[1.0, 2.0], qty=None, side=None)).collect()
    assert df["ts"].to_list() == [T * NS + 250_000_000, T * NS + 500_000_000]
    df = load_market_data(bars(ts=[date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)])).collect()
    assert df["ts"].to_list() == [T * NS, (T + 86400) * NS, (T + 2 * 86400) * NS]


def test_unsorted_input_is_sorted_stably() -> None:
    frame = trades(ts=[T + 2, T, T + 2], price=[1.0, 2.0, 3.0])
    df = load_market_data(frame).collect()
    assert df["ts"].to_list() == [T * NS, (T + 2) * NS, (T + 2) * NS]
    assert df["price"].to_list() == [2.0, 1.0, 3.0]


# -- files ------------------------------------------------------------------------------------


def test_csv_and_parquet_give_the_same_frame(tmp_path: Path) -> None:
    frame = bars(ts=[T + 120, T, T + 60])
    frame.write_csv(tmp_path / "b.csv")
    frame.write_parquet(tmp_path / "b.parquet")
    a = load_market_data(tmp_path / "b.csv")
    b = load_market_data(str(tmp_path / "b.parquet"))
    assert a.name == "b.csv" and b.name == "b.parquet"
    assert a.collect().equals(b.collect())
    assert a.collect()["ts"].is_sorted()


def test_csv_with_iso_strings_and_lazy_frames(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Time,Price,Amount\n2024-01-01T00:00:00Z,100.5,1\n2024-01-01T00:00:01.5Z,101,2\n")
    md = load_market_data(path, symbol="BTC-USD")
    assert md.collect().row(1) == ((T + 1) * NS + 500_000_000, "BTC-USD", 101.0, 2.0, None)
    lazy = load_market_data(trades().lazy())
    assert lazy.kind == "trades" and lazy.rows == 3


def test_example_files() -> None:
    b = load_market_data(DATA / "btc_bars_1m.csv")
    t = load_market_data(DATA / "btc_trades.parquet")
    assert (b.kind, b.symbols) == ("bars", ("BTC-USD",)) and 100 <= b.rows <= 1000
    assert (t.kind, t.symbols) == ("trades", ("BTC-USD",)) and 1000 <= t.rows <= 10_000
    df = b.collect()
    assert (df["ts"].diff().drop_nulls() == 60 * NS).all()
    assert (df["high"] >= df[["open", "close"]].max_horizontal()).all()
    assert (df["low"] <= df[["open", "close"]].min_horizontal()).all()
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 50_000


def test_make_data_is_seeded_and_readable(tmp_path: Path) -> None:
    script = ROOT / "examples" / "make_data.py"
    out = tmp_path / "bars.csv"
    subprocess.run([sys.executable, str(script), "bars", "--rows", "500", "--out", str(out)], check=True,
                   capture_output=True)
    assert load_market_data(out).rows == 500
    spec = importlib.util.spec_from_file_location("make_data", script)
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    for kind in ("bars", "trades"):
        outs = []
        for name in ("a", "b"):
            out = tmp_path / f"{kind}-{name}.parquet"
            make_data.main([kind, "--rows", "2000", "--out", str(out), "--seed", "5"])
            outs.append(load_market_data(out))
        assert outs[0].kind == kind and outs[0].rows == 2000
        assert outs[0].collect().equals(outs[1].collect())
