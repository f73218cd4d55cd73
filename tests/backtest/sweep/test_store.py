"""The results folder: a killed sweep's torn last row is dropped, and the rows are a flat table."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tradsys.backtest.sweep import SweepError
from tradsys.backtest.sweep.store import JOURNAL, TABLE, ResultStore


def row(slow: int) -> dict:
    return {"key": f"k{slow}", "params": {"slow": str(slow)}, "fold": None, "sample": None, "trial": None,
            "metrics": {"sharpe": 1.5, "trades": 3}, "state": "stopped", "error": "", "warnings": [],
            "elapsed_s": 0.1}


def test_a_torn_last_row_is_dropped_and_the_rest_resumed(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, {"v": 1}, resume=False, typed=lambda p: {k: int(v) for k, v in p.items()})
    store.add(row(8))
    store.add(row(9))
    store.close()
    table = pl.read_parquet(tmp_path / TABLE)
    assert table["param_slow"].to_list() == [8, 9] and table["sharpe"].to_list() == [1.5, 1.5]
    with (tmp_path / JOURNAL).open("a") as f:
        f.write(json.dumps(row(10))[:30])  # killed while writing
    with pytest.raises(SweepError, match="another sweep"):
        ResultStore(tmp_path, {"v": 2}, resume=True)
    again = ResultStore(tmp_path, {"v": 1}, resume=True)
    assert sorted(again.rows) == ["k8", "k9"]
    again.add(row(10))
    again.close()
    assert [json.loads(line)["key"] for line in (tmp_path / JOURNAL).read_text().splitlines()] == ["k8", "k9", "k10"]
