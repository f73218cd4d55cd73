"""Declared parameters: types, defaults, ranges, text from the CLI and gRPC."""

from decimal import Decimal

import pytest

from tradsys.engine.strategy import BUILTINS, Duration, Param, ParamError, parse_assignments, resolve_params

SPECS = {
    "n": Param(int, 10, "count", min=1, max=100),
    "x": Param(float, 1.5, "ratio", min=0),
    "d": Param(Decimal, Decimal("0.01"), "size"),
    "flag": Param(bool, False, "switch"),
    "every": Param(Duration, Duration(5), "interval"),
    "mode": Param(str, "a", "mode", choices=("a", "b")),
    "need": Param(str, description="required one"),
}


def test_defaults_and_text_values() -> None:
    out = resolve_params(SPECS, {"need": "yes", "n": "20", "x": "2.5", "d": "0.5", "flag": "true", "every": "500ms"})
    assert out == {"n": 20, "x": 2.5, "d": Decimal("0.5"), "flag": True, "every": 0.5, "mode": "a", "need": "yes"}
    assert resolve_params(SPECS, {"need": "y", "every": "1m"})["every"] == 60.0


@pytest.mark.parametrize(("values", "message"), [
    ({"need": "y", "n": "ten"}, "n: 'ten' is not a valid int"),
    ({"need": "y", "n": "0"}, "below the minimum"),
    ({"need": "y", "n": 101}, "above the maximum"),
    ({"need": "y", "n": 2.5}, "not a valid int"),
    ({"need": "y", "flag": "maybe"}, "not a valid bool"),
    ({"need": "y", "mode": "c"}, "not one of a, b"),
    ({"need": "y", "x": "nan"}, "NaN"),
    ({"need": "y", "bogus": 1}, "unknown parameter bogus"),
    ({}, "need: required"),
])
def test_invalid_values_name_the_parameter(values: dict, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        resolve_params(SPECS, values)


def test_assignments() -> None:
    assert parse_assignments(["fast=10", " slow = 30 "]) == {"fast": "10", "slow": "30"}
    with pytest.raises(ParamError, match="NAME=VALUE"):
        parse_assignments(["fast"])


def test_builtins_declare_documented_params() -> None:
    assert set(BUILTINS) == {"market_making", "sma_cross", "mean_reversion"}
    assert {"symbol", "spread_bps", "quantity", "max_position", "refresh_seconds"} <= set(BUILTINS["market_making"].params)
    assert {"fast", "slow", "quantity"} <= set(BUILTINS["sma_cross"].params)
    for cls in BUILTINS.values():
        resolve_params(cls.params, {})  # every built-in runs on its defaults
        assert all(p.description for p in cls.params.values())
