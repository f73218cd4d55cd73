"""A sweep's results folder (`--out DIR`): rows kept as they finish, and what `--resume` reads.

- `results.jsonl`, the journal: one row a line, appended and flushed as each task finishes, so a
  sweep that is killed keeps every row it had (a torn last line is dropped when it is read back).
- `results.parquet`, the table: one row per task, the parameters as `param_NAME` columns and one
  column per metric; rewritten (to a temporary file, then renamed) at most every WRITE_EVERY_S and
  when the sweep ends.
- `sweep.json`: what the rows depend on (the data, the strategy, the engine's settings, the
  search's seed...). `--resume` refuses a folder whose sweep differs, and skips the tasks whose rows
  are in the journal; a folder with results is never overwritten without it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from tradsys.backtest.sweep.errors import SweepError

JOURNAL = "results.jsonl"
TABLE = "results.parquet"
SPEC = "sweep.json"
WRITE_EVERY_S = 1.0


class ResultStore:
    """Rows of one sweep; `folder` None keeps them in memory only."""

    def __init__(self, folder: Path | None, spec: dict[str, Any], resume: bool,
                 typed: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> None:
        self.folder, self.typed = folder, typed
        self.rows: dict[str, dict[str, Any]] = {}
        """Every row by its task's key: the journal's, then this run's."""
        self.loaded: set[str] = set()
        """The keys of the rows read from the journal (--resume)."""
        self._journal = None
        self._written = 0.0
        self._dirty = False
        if folder is None:
            return
        spec = json.loads(json.dumps(spec, default=str))  # as it reads back
        journal = folder / JOURNAL
        if journal.exists() and journal.stat().st_size:
            if not resume:
                raise SweepError(f"{folder} has the results of a sweep: --resume continues it; or give another --out")
            saved = json.loads((folder / SPEC).read_text()) if (folder / SPEC).exists() else {}
            if saved != spec:
                differ = sorted(k for k in set(saved) | set(spec) if saved.get(k) != spec.get(k))
                raise SweepError(f"{folder} holds another sweep (its {', '.join(differ)} differ); "
                                 "give another --out to run this one")
            for row in _read(journal):
                self.rows[row["key"]] = row
            self.loaded = set(self.rows)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SPEC).write_text(json.dumps(spec, indent=2))
        self._journal = journal.open("a")

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["key"]] = row
        if self._journal is None:
            return
        self._journal.write(json.dumps(row, default=str) + "\n")
        self._journal.flush()
        self._dirty = True
        if time.monotonic() - self._written >= WRITE_EVERY_S:
            self.write_table()

    def write_table(self) -> Path | None:
        if self.folder is None:
            return None
        path = self.folder / TABLE
        tmp = path.with_suffix(".tmp")
        table(list(self.rows.values()), self.typed).write_parquet(tmp)
        tmp.replace(path)
        self._written, self._dirty = time.monotonic(), False
        return path

    def close(self) -> None:
        if self._journal is not None:
            if self._dirty or not (self.folder / TABLE).exists():  # type: ignore[operator]
                self.write_table()
            self._journal.close()
            self._journal = None


def table(rows: list[dict[str, Any]], typed: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> pl.DataFrame:
    """Rows as one flat frame: key, fold, sample, trial, param_*, state, error, warnings, elapsed_s, metrics."""
    if not rows:
        return pl.DataFrame()
    flat = []
    for row in rows:
        item = {k: row.get(k) for k in ("key", "fold", "sample", "trial")}
        item.update({f"param_{k}": v for k, v in typed(row["params"]).items()})
        item.update({k: row.get(k) for k in ("state", "error", "warnings", "elapsed_s")})
        item.update(row.get("metrics") or {})
        flat.append(item)
    return pl.DataFrame(flat, infer_schema_length=None,
                        schema_overrides={"fold": pl.Int64, "sample": pl.String, "trial": pl.Int64,
                                          "error": pl.String, "warnings": pl.List(pl.String),
                                          "elapsed_s": pl.Float64})


def _read(journal: Path) -> list[dict[str, Any]]:
    """The journal's rows; a torn last line (the sweep was killed while writing it) is cut off."""
    rows = []
    good = 0
    with journal.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                rows.append(json.loads(line))
            except ValueError:
                break
            good += len(line)
    if good < journal.stat().st_size:
        with journal.open("r+b") as f:
            f.truncate(good)
    return rows
