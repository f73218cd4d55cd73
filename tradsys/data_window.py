"""A time range and a bar size over normalised market data, applied lazily in polars.

`--timerange` takes freqtrade's syntax: `20240101-20240301`, `20240101-` or `-20240301` (UTC
dates), or epoch seconds (`1704067200-1709251200`); rows from the start (inclusive) to the end
(exclusive). `--timeframe` (`1s`, `5m`, `1h`, `4h`, `1d`, `1w`) resamples bars to longer bars,
or trades to bars: open the first price, high the highest, low the lowest, close the last,
volume the sum; a bar's ts is when it opens, on the timeframe's UTC grid.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import polars as pl

__all__ = ["parse_timerange", "parse_timeframe", "restrict", "resample"]

UNIT_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86_400 * 10**9, "w": 7 * 86_400 * 10**9}
TIMEFRAME = re.compile(r"^(\d+)([smhdw])$")
RANGE_END = re.compile(r"^(\d{8}|\d{9,10})?$")


class WindowError(ValueError):
    """A --timerange or --timeframe that cannot be read."""


def parse_timerange(text: str) -> tuple[int | None, int | None]:
    """(start ns or None, end ns or None) from `YYYYMMDD-YYYYMMDD`, either side optional."""
    start, sep, end = text.strip().partition("-")
    if not sep or not (RANGE_END.match(start) and RANGE_END.match(end)) or not (start or end):
        raise WindowError(f"--timerange {text!r}: expected START-END as YYYYMMDD or epoch seconds, "
                          "either side optional (20240101-20240301, 20240101-, -20240301)")
    bounds = _bound(text, start), _bound(text, end)
    if bounds[0] is not None and bounds[1] is not None and bounds[0] >= bounds[1]:
        raise WindowError(f"--timerange {text!r}: the start is not before the end")
    return bounds


def parse_timeframe(text: str) -> int:
    """The bar length in ns of `5m`, `1h`, `1d`...; months (`1M`) are not a fixed length and are refused."""
    match = TIMEFRAME.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise WindowError(f"--timeframe {text!r}: expected a count and a unit s, m, h, d or w (1m, 5m, 1h, 1d)")
    return int(match.group(1)) * UNIT_NS[match.group(2)]


def restrict(frame: pl.LazyFrame, start_ns: int | None, end_ns: int | None) -> pl.LazyFrame:
    if start_ns is not None:
        frame = frame.filter(pl.col("ts") >= start_ns)
    if end_ns is not None:
        frame = frame.filter(pl.col("ts") < end_ns)
    return frame


def resample(frame: pl.LazyFrame, kind: str, every_ns: int) -> pl.LazyFrame:
    """Bars of `every_ns` from normalised bars or trades (see the module doc), per symbol."""
    if kind == "bars":
        aggs = [pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
                pl.col("volume").sum()]
    else:
        aggs = [pl.col("price").first().alias("open"), pl.col("price").max().alias("high"),
                pl.col("price").min().alias("low"), pl.col("price").last().alias("close"),
                pl.col("qty").sum().alias("volume")]
    bucket = (pl.col("ts") // every_ns * every_ns).alias("ts")
    return (frame.sort("ts", maintain_order=True)
            .group_by(bucket, "symbol", maintain_order=True).agg(aggs)
            .select("ts", "symbol", "open", "high", "low", "close", "volume"))


def _bound(text: str, value: str) -> int | None:
    if not value:
        return None
    if len(value) == 8:
        try:
            day = datetime.strptime(value, "%Y%m%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise WindowError(f"--timerange {text!r}: {value} is not a date (YYYYMMDD)") from None
        return int(day.timestamp()) * 10**9
    return int(value) * 10**9
