"""The file a download writes: the project's bar or trade schema, parquet or CSV by extension.

Bars: ts, symbol, open, high, low, close, volume (tradsys/data.py reads them back). Trades:
ts, symbol, price, qty, side, and the exchange's trade `id`, which a resumed download uses to
leave out the trades it already has at the seam. `ts` is a UTC datetime to the millisecond.
A write goes to a temporary file renamed over the old one, so an interrupted write never leaves
half a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import polars as pl

Kind = Literal["bars", "trades"]

TS = pl.Datetime("ms", "UTC")
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "bars": {"ts": TS, "symbol": pl.String(), "open": pl.Float64(), "high": pl.Float64(), "low": pl.Float64(),
             "close": pl.Float64(), "volume": pl.Float64()},
    "trades": {"ts": TS, "symbol": pl.String(), "price": pl.Float64(), "qty": pl.Float64(), "side": pl.String(),
               "id": pl.String()},
}
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class HistoryFileError(ValueError):
    """A file that cannot be resumed into: another kind, another symbol, unreadable, unknown suffix."""


def file_format(path: Path) -> str:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise HistoryFileError(f"{path.name}: unknown file type {path.suffix or '(none)'!r}; use .parquet or .csv")
    return fmt


def frame(kind: Kind, rows: dict[str, list]) -> pl.DataFrame:
    """Rows as a frame of the kind's schema."""
    return pl.DataFrame(rows, schema={name: pl.Int64() if name == "ts" else dtype
                                      for name, dtype in SCHEMAS[kind].items()}).with_columns(pl.col("ts").cast(TS))


def read(path: Path, kind: Kind, symbol: str) -> pl.DataFrame | None:
    """The rows already downloaded into `path`, or None when it does not exist."""
    if not path.exists():
        return None
    try:
        if file_format(path) == "parquet":
            data = pl.read_parquet(path)
        else:
            data = pl.read_csv(path, try_parse_dates=True, schema_overrides={"id": pl.String(), "side": pl.String()})
    except HistoryFileError:
        raise
    except Exception as exc:  # polars raises several types for unreadable files
        raise HistoryFileError(f"{path.name}: cannot read it to resume: {' '.join(str(exc).split())[:200]}") from exc
    missing = [name for name in SCHEMAS[kind] if name not in data.columns]
    if missing:
        other = "trades" if kind == "bars" else "bars"
        raise HistoryFileError(f"{path.name}: not a {kind} file (no {', '.join(missing)}); is it {other}? "
                               "Use another --out")
    data = data.select(SCHEMAS[kind].keys()).cast(SCHEMAS[kind])  # type: ignore[arg-type]
    symbols = set(data["symbol"].unique().to_list())
    if symbols - {symbol}:
        raise HistoryFileError(f"{path.name}: holds {', '.join(sorted(map(str, symbols)))}, not {symbol}; "
                               "use another --out")
    return data.sort("ts", maintain_order=True)


def write(path: Path, data: pl.DataFrame) -> None:
    """Write atomically: a temporary file beside `path`, then a rename."""
    fmt = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    if fmt == "parquet":
        data.write_parquet(temporary)
    else:
        data.write_csv(temporary, datetime_format="%Y-%m-%dT%H:%M:%S%.3fZ")
    os.replace(temporary, path)
