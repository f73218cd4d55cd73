"""The sweep's market data, read from the user's files once and handed to every worker.

The parent loads the data (any shape `tradsys.data` reads, with --timerange and --timeframe
applied) and writes the normalised frame once, as an uncompressed Arrow IPC file (`data.arrow`,
with its facts in `data.json`). A local worker memory-maps that file when it starts: the pages
are shared by every worker through the page cache, nothing is pickled per task. A Ray worker gets
the same bytes from the object store once (`tradsys.backtest.sweep.ray_runner`). Each process keeps
the frame it opened for all its tasks.
"""

from __future__ import annotations

import io
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import polars as pl

from tradsys.data import MarketData

DATA_FILE = "data.arrow"
META_FILE = "data.json"


class Dataset:
    """A normalised frame and the facts `MarketData` carries about it (name, kind, symbols...)."""

    def __init__(self, frame: pl.DataFrame, meta: dict[str, Any]) -> None:
        self.frame = frame
        self.meta = meta

    @property
    def span(self) -> tuple[int, int]:
        """[first ts, last ts + 1): the time range the data covers, in ns."""
        return self.meta["start_ns"], self.meta["end_ns"] + 1

    def market(self, window: tuple[int, int] | None = None) -> MarketData:
        """The data as the backtester takes it; `window` keeps the rows with start <= ts < end."""
        meta = {k: v for k, v in self.meta.items() if k != "symbols"}
        if window is None:
            return MarketData(frame=self.frame.lazy(), symbols=tuple(self.meta["symbols"]), **meta)
        start, end = window
        part = self.frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        if part.height == 0:
            raise ValueError(f"no rows from {start} to {end}")
        symbols = tuple(part.get_column("symbol").unique(maintain_order=True).to_list())
        meta.update(rows=part.height, start_ns=int(part.get_column("ts")[0]), end_ns=int(part.get_column("ts")[-1]))
        return MarketData(frame=part.lazy(), symbols=symbols, **meta)

    @classmethod
    def write(cls, data: MarketData, folder: Path) -> Path:
        """`data` collected and written to `folder` (data.arrow, data.json); returns the arrow file's path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / DATA_FILE
        tmp = path.with_suffix(".tmp")
        data.collect().write_ipc(tmp, compression="uncompressed")  # memory-mappable
        tmp.replace(path)
        (folder / META_FILE).write_text(json.dumps(facts(data)))
        return path

    @classmethod
    def open(cls, path: Path) -> Dataset:
        return cls(pl.read_ipc(path), load_meta(path))  # an uncompressed file: polars memory-maps it

    @classmethod
    def from_bytes(cls, blob: bytes, meta: dict[str, Any]) -> Dataset:
        return cls(pl.read_ipc(io.BytesIO(blob)), meta)


def facts(data: MarketData) -> dict[str, Any]:
    """What `MarketData` says about its frame (name, kind, symbols, rows, time range...), as JSON values."""
    meta = {f.name: getattr(data, f.name) for f in fields(data) if f.name != "frame"}
    meta["symbols"] = list(data.symbols)
    return meta


def load_meta(path: Path) -> dict[str, Any]:
    """The facts written beside the arrow file at `path`."""
    return json.loads((path.parent / META_FILE).read_text())
