"""What a sweep tries, checked before anything runs: grids, ranges, objectives, walk-forward folds."""

from __future__ import annotations

import pytest

from tradsys.backtest.sweep import ParamRange, SweepError, combinations, objective, parse_grid, parse_ranges
from tradsys.backtest.sweep.walk_forward import folds
from tradsys.engine.strategy import ParamError, SmaCross

SPECS = SmaCross.params


def test_grid_combinations_vary_the_last_axis_fastest() -> None:
    axes = parse_grid(["fast=3, 5", "slow=8,13"], SPECS)
    assert combinations(axes, {"quantity": "1"}) == [
        {"quantity": "1", "fast": "3", "slow": "8"}, {"quantity": "1", "fast": "3", "slow": "13"},
        {"quantity": "1", "fast": "5", "slow": "8"}, {"quantity": "1", "fast": "5", "slow": "13"}]


@pytest.mark.parametrize(("items", "message"), [
    (["speed=1,2"], "unknown parameter"), (["fast="], "no values"), (["fast=3,x"], "not a valid int"),
    (["fast=0"], "below the minimum")])
def test_bad_grids_are_refused(items: list[str], message: str) -> None:
    with pytest.raises(ParamError, match=message):
        parse_grid(items, SPECS)


def test_ranges_take_the_parameter_type_or_the_one_given() -> None:
    assert parse_ranges(["fast=5:50", "quantity=0.01:1:log"], SPECS) == [
        ParamRange("fast", 5, 50, "int"), ParamRange("quantity", 0.01, 1.0, "log")]


@pytest.mark.parametrize(("items", "message"), [
    (["fast=5"], "LOW:HIGH"), (["fast=50:5"], "below HIGH"), (["fast=1.5:9"], "must be int"),
    (["fast=1:9:float"], "int range"), (["quantity=0:1:log"], "above 0"), (["symbol=a:b"], "has no range"),
    (["fast=1:9:cube"], "not one of")])
def test_bad_ranges_are_refused(items: list[str], message: str) -> None:
    with pytest.raises(ParamError, match=message):
        parse_ranges(items, SPECS)


def test_objectives_have_aliases_and_a_better_direction() -> None:
    assert (objective("return").metric, objective("return").maximise) == ("total_return", True)
    assert not objective("max_drawdown").maximise and objective("max_drawdown", "max").maximise
    with pytest.raises(SweepError, match="not a metric"):
        objective("luck")
    row = {"state": "stopped", "metrics": {"sharpe": 1.0}}
    assert objective("sharpe").value(row) == 1.0 and objective("sharpe").value({**row, "state": "failed"}) is None


def test_walk_forward_folds_cut_the_range_into_k_plus_one_parts() -> None:
    cut = folds((0, 400), 3)
    assert [(f.in_sample, f.out_of_sample) for f in cut] == [((0, 100), (100, 200)), ((100, 200), (200, 300)),
                                                             ((200, 300), (300, 400))]
    with pytest.raises(SweepError, match="too short"):
        folds((0, 3), 3)
