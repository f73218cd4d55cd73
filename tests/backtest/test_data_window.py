"""--timerange and --timeframe: a time range of the data, and bars resampled from bars or trades."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.backtest.test_data_shapes import FEB_MS, MIN_MS, T0_MS, canonical, fills
from tradsys.cli.app import app
from tradsys.data import DataError, load_market_data
from tradsys.data_window import WindowError, parse_timeframe, parse_timerange

runner = CliRunner()
DAY_NS = 86_400 * 10**9


def by_hand(rows: list[tuple[int, float, float, float, float, float]], every_ms: int) -> pl.DataFrame:
    """(ms, open, high, low, close, volume) rows grouped into bars of `every_ms`, in plain Python."""
    out: dict[int, list[float]] = {}
    for ms, o, h, lo, c, v in rows:
        key = ms // every_ms * every_ms
        bar = out.get(key)
        if bar is None:
            out[key] = [o, h, lo, c, v]
        else:
            bar[1], bar[2], bar[3], bar[4] = max(bar[1], h), min(bar[2], lo), c, bar[4] + v
    keys = sorted(out)
    return pl.DataFrame({"ts": [k * 10**6 for k in keys], "symbol": ["BTC-USD"] * len(keys),
                         **{name: [out[k][i] for k in keys] for i, name in enumerate(("open", "high", "low", "close",
                                                                                       "volume"))}})


def test_parse() -> None:
    assert parse_timerange("20240101-20240301") == (T0_MS * 10**6, T0_MS * 10**6 + 60 * DAY_NS)
    assert parse_timerange("20240101-") == (T0_MS * 10**6, None)
    assert parse_timerange("-1704067200") == (None, T0_MS * 10**6)
    for bad in ("2024-01-01", "20240101", "-", "20240230-", "20240301-20240101"):
        with pytest.raises(WindowError):
            parse_timerange(bad)
    assert parse_timeframe("5m") == 5 * MIN_MS * 10**6 and parse_timeframe("4h") == 4 * 3600 * 10**9
    for bad in ("5", "1M", "0m", "m5"):
        with pytest.raises(WindowError):
            parse_timeframe(bad)


def test_timerange_keeps_start_to_end(tmp_path: Path) -> None:
    pl.concat([canonical(), canonical(start_ms=FEB_MS)]).write_parquet(tmp_path / "both.parquet")
    canonical(start_ms=FEB_MS).write_parquet(tmp_path / "feb.parquet")
    assert fills(tmp_path / "both.parquet", timerange="20240201-").equals(fills(tmp_path / "feb.parquet"))
    md = load_market_data(tmp_path / "both.parquet", timerange="-20240201")
    assert md.rows == 600 and md.end_ns < FEB_MS * 10**6
    with pytest.raises(DataError, match="no rows in --timerange 20250101-"):
        load_market_data(tmp_path / "both.parquet", timerange="20250101-")


def test_timeframe_resamples_bars_like_bars_made_by_hand(tmp_path: Path) -> None:
    one = canonical()
    one.write_parquet(tmp_path / "1m.parquet")
    rows = [(ts // 10**6, o, h, lo, c, v) for ts, _, o, h, lo, c, v in one.iter_rows()]
    by_hand(rows, 5 * MIN_MS).write_parquet(tmp_path / "5m.parquet")
    md = load_market_data(tmp_path / "1m.parquet", timeframe="5m")
    assert md.kind == "bars" and md.rows == 120
    assert md.collect().equals(load_market_data(tmp_path / "5m.parquet").collect())
    got = fills(tmp_path / "1m.parquet", timeframe="5m")
    assert got.height > 0 and got.equals(fills(tmp_path / "5m.parquet"))


def test_timeframe_turns_trades_into_bars(tmp_path: Path) -> None:
    prices = [100.0, 101.5, 99.0, 100.5, 102.0, 101.0, 103.0]
    secs = [0, 10, 30, 59, 60, 90, 185]
    trades = pl.DataFrame({"ts": [T0_MS * 10**6 + s * 10**9 for s in secs], "symbol": ["BTC-USD"] * 7,
                           "price": prices, "qty": [1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 2.0]})
    bars = load_market_data(trades, timeframe="1m").collect()
    want = by_hand([(T0_MS + s * 1000, p, p, p, p, q) for s, p, q in zip(secs, prices, trades["qty"])], MIN_MS)
    assert bars.equals(want)
    assert bars["close"].to_list() == [100.5, 101.0, 103.0]


def test_cli_run_and_sweep_take_the_window(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USD-1m.parquet"
    pl.concat([canonical(), canonical(start_ms=FEB_MS)]).write_parquet(path)
    args = ["--strategy", "sma_cross", "--timerange", "20240201-20240301", "--timeframe", "5m"]
    result = runner.invoke(app, ["backtest", "run", str(path), *args, "-p", "fast=3", "-p", "slow=8", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["info"]["rows"] == 120 and doc["info"]["start"] >= FEB_MS * 10**6 and doc["metrics"]["fills"] > 0
    sweep = runner.invoke(app, ["backtest", "sweep", str(path), *args, "--grid", "fast=3,4", "-p", "slow=8",
                                "--workers", "1", "--json"])
    assert sweep.exit_code == 0, sweep.output
    results = json.loads(sweep.stdout)["results"]
    assert len(results) == 2 and all(r["state"] != "error" for r in results)
    assert {r["metrics"]["fills"] for r in results if r["params"]["fast"] == "3"} == {doc["metrics"]["fills"]}
    bad = runner.invoke(app, ["backtest", "sweep", str(path), "-s", "sma_cross", "--grid", "fast=3",
                              "--timeframe", "5 minutes"])
    assert bad.exit_code == 2 and "--timeframe" in bad.output
