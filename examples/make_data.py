"""Seeded synthetic market data: 1-minute-style bars or individual trades, as CSV or parquet.

    python examples/make_data.py bars --rows 1000000 --out big.parquet
    python examples/make_data.py trades --rows 5000 --out trades.parquet --seed 3
    python examples/make_data.py bars --rows 300 --out examples/data/btc_bars_1m.csv       # the samples
    python examples/make_data.py trades --rows 3000 --out examples/data/btc_trades.parquet

The price is a log random walk with a realistic annualised volatility (default 60%, BTC-like).
Bars: open = previous close, high/low reach beyond open/close by a half-normal fraction of the
bar's volatility, volume is log-normal. Trades: Poisson arrivals, millisecond timestamps, a
bid/ask bounce of half a spread around the walk, log-normal sizes in whole lots, buy/sell at
random. Randomness comes from Python's seeded Mersenne Twister as raw bytes; the arithmetic
runs as polars expressions, so a million rows take a second or two. CSV files get ISO-8601
timestamps, parquet files a UTC datetime column.
"""

from __future__ import annotations

import argparse
import array
import math
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

YEAR_S = 365 * 86_400


def uniforms(rng: random.Random, n: int, k: int) -> pl.DataFrame:
    """k columns u0..u{k-1} of n uniforms in (0, 1), from the seeded generator."""
    raw = array.array("Q")
    raw.frombytes(rng.randbytes(8 * n * k))
    if sys.byteorder == "big":
        raw.byteswap()
    bits = pl.Series("bits", raw, dtype=pl.UInt64)
    u = ((bits // 2048).cast(pl.Float64) + 0.5) * 2.0**-53  # 53 random bits, never 0 or 1
    return pl.DataFrame({f"u{j}": u.slice(j * n, n) for j in range(k)})


def normal(a: str, b: str) -> pl.Expr:
    """Standard normal from two uniform columns (Box-Muller)."""
    return (-2.0 * pl.col(a).log()).sqrt() * (2.0 * math.pi * pl.col(b)).cos()


def bars(rows: int, seed: int, symbol: str, start_price: float, vol: float, interval_s: int, start_ns: int) -> pl.DataFrame:
    rng = random.Random(seed)
    sigma = vol * math.sqrt(interval_s / YEAR_S)
    frame = uniforms(rng, rows, 6).with_columns(
        z=normal("u0", "u1"),
        up=normal("u2", "u3").abs(),
        down=normal("u3", "u2").abs(),
        zv=normal("u4", "u5"),
    )
    close = (start_price * (sigma * pl.col("z")).cum_sum().exp())
    frame = frame.select(
        (start_ns + pl.int_range(rows, dtype=pl.Int64) * (interval_s * 10**9)).alias("ts"),
        close.alias("close"),
        "up", "down", "zv",
    ).with_columns(open=pl.col("close").shift(1, fill_value=start_price))
    high = pl.max_horizontal("open", "close") * (0.6 * sigma * pl.col("up")).exp()
    low = pl.min_horizontal("open", "close") * (-0.6 * sigma * pl.col("down")).exp()
    volume = (5.0 * (0.8 * pl.col("zv")).exp() * math.sqrt(interval_s / 60)).round(3)
    return frame.select(
        pl.from_epoch("ts", time_unit="ns").dt.replace_time_zone("UTC").alias("ts"),
        pl.lit(symbol).alias("symbol"),
        pl.col("open").round(2),
        high.round(2).alias("high"),
        low.round(2).alias("low"),
        pl.col("close").round(2),
        volume.alias("volume"),
    ).with_columns(  # rounding must not push open/close outside high/low
        pl.max_horizontal("high", "open", "close").alias("high"),
        pl.min_horizontal("low", "open", "close").alias("low"),
    )


def trades(rows: int, seed: int, symbol: str, start_price: float, vol: float, rate: float, start_ns: int,
           spread_bps: float = 1.0, tick: float = 0.01, lot: float = 0.001) -> pl.DataFrame:
    rng = random.Random(seed)
    frame = uniforms(rng, rows, 5)
    gap_s = -pl.col("u0").log() / rate
    frame = frame.with_columns(gap=gap_s, z=normal("u1", "u2"), zq=normal("u2", "u1"))
    walk = (vol * (pl.col("gap") / YEAR_S).sqrt() * pl.col("z")).cum_sum().exp() * start_price
    buy = pl.col("u3") < 0.5
    half = spread_bps / 20_000
    price = (walk * pl.when(buy).then(1 + half).otherwise(1 - half) / tick).round(0) * tick
    lots = (0.01 * (1.2 * pl.col("zq")).exp() / lot).round(0).clip(lower_bound=1)
    return frame.select(
        pl.from_epoch(start_ns // 10**6 + (pl.col("gap").cum_sum() * 1e3).cast(pl.Int64), time_unit="ms")
        .dt.replace_time_zone("UTC").alias("ts"),  # millisecond stamps, as exchange feeds give
        pl.lit(symbol).alias("symbol"),
        price.round(2).alias("price"),
        (lots * lot).round(3).alias("qty"),
        pl.when(buy).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side"),
    )


def write(frame: pl.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")).write_csv(out)
    elif out.suffix.lower() in (".parquet", ".pq"):
        frame.write_parquet(out, compression="zstd", statistics=False)
    else:
        raise SystemExit(f"--out must end in .csv or .parquet, got {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("bars", "trades"))
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--symbol", default="BTC-USD")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start-price", type=float, default=60_000.0)
    parser.add_argument("--vol", type=float, default=0.60, help="annualised volatility (0.6 = 60%%)")
    parser.add_argument("--interval", type=int, default=60, help="bar length in seconds")
    parser.add_argument("--rate", type=float, default=4.0, help="trades per second")
    parser.add_argument("--start", default="2024-01-01T00:00:00Z", help="first timestamp, ISO-8601")
    args = parser.parse_args(argv)
    if args.rows < 1:
        raise SystemExit("--rows must be at least 1")
    start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    start_ns = int(start.timestamp()) * 10**9 + start.microsecond * 1000
    began = time.perf_counter()
    if args.kind == "bars":
        frame = bars(args.rows, args.seed, args.symbol, args.start_price, args.vol, args.interval, start_ns)
    else:
        frame = trades(args.rows, args.seed, args.symbol, args.start_price, args.vol, args.rate, start_ns)
    write(frame, args.out)
    print(f"{args.out}: {frame.height:,} {args.kind} in {time.perf_counter() - began:.2f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
