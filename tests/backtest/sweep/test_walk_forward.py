"""`--walk-forward K`: each fold's best in-sample parameters, run on the part of the data after it."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tests.backtest.sweep.helpers import invoke, sweep_args
from tradsys.backtest import BacktestEngine
from tradsys.data import load_market_data


def test_walk_forward_reports_in_and_out_of_sample(bars_file: Path) -> None:
    doc = invoke(sweep_args(bars_file, "--grid", "fast=3,5", "--grid", "slow=8,13", "--walk-forward", "3",
                            "--workers", "1"))
    walk = doc["walk_forward"]
    folds = walk["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2] and walk["objective"] == "sharpe"
    for before, after in zip(folds, folds[1:]):
        assert before["out_of_sample"] == after["in_sample"]
    for fold in folds:
        assert fold["in_sample"][1] == fold["out_of_sample"][0]
        runs = [r for r in doc["results"] if r["fold"] == fold["fold"]]
        inside = [r for r in runs if r["sample"] == "in"]
        (tested,) = [r for r in runs if r["sample"] == "out"]
        assert len(inside) == fold["runs"] == 4
        assert fold["in_sample_value"] == max(r["metrics"]["sharpe"] for r in inside)
        assert tested["params"] == fold["params"] and tested["metrics"] == fold["out_of_sample_metrics"]
        assert fold["out_of_sample_value"] == tested["metrics"]["sharpe"]
    last = folds[-1]  # checked against a backtest of that window alone
    data = load_market_data(bars_file)
    start, end = last["out_of_sample"]
    engine = BacktestEngine(100_000.0)
    engine.add_strategy("sma_cross", last["params"])
    engine.load_data(load_market_data(data.collect().filter((pl.col("ts") >= start) & (pl.col("ts") < end)),
                                      data.symbols[0]))
    assert engine.run().to_dict()["metrics"] == last["out_of_sample_metrics"]
    assert walk["out_of_sample_mean"] == sum(f["out_of_sample_value"] for f in folds) / 3
