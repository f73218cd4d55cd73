"""`--search optuna`: a seeded search gives the same trials on every run, on one or many workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.backtest.sweep.helpers import invoke, sweep_args

SEARCH = ("--search", "optuna", "--param-range", "fast=2:12", "--param-range", "slow=13:80", "--grid",
          "quantity=0.1,0.2", "--trials", "12", "--batch", "4", "--objective", "calmar")


def trials(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((r["trial"], sorted(r["params"].items()), r["metrics"]) for r in doc["results"])


def test_a_seeded_search_is_reproducible(bars_file: Path) -> None:
    first = invoke(sweep_args(bars_file, *SEARCH, "--seed", "7", "--workers", "2"))
    again = invoke(sweep_args(bars_file, *SEARCH, "--seed", "7", "--workers", "1"))
    assert trials(first) == trials(again)
    assert first["objective"] == "calmar" and first["search"] == "optuna"
    params = [r["params"] for r in first["results"]]
    assert all(2 <= p["fast"] <= 12 and 13 <= p["slow"] <= 80 and p["quantity"] in ("0.1", "0.2") for p in params)
    calmars = [r["metrics"]["calmar"] for r in first["results"]]
    assert None not in calmars and first["best"]["metrics"]["calmar"] == max(calmars)
    other = invoke(sweep_args(bars_file, *SEARCH, "--seed", "8", "--workers", "1"))
    assert trials(other) != trials(first)
