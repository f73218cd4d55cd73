"""What a sweep tries: a grid's combinations (`--grid fast=5,10,20`) or an optimiser's ranges
(`--param-range fast=5:50`, `--param-range slow=20:300:int`), checked against the strategy's
declared parameters before anything runs."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradsys.engine.strategy import Param, ParamError, parse_assignments

RANGE_KINDS = ("int", "float", "log")
"""The third field of a range: integers, floats, or floats sampled on a log scale."""


@dataclass(frozen=True)
class ParamRange:
    """One searched parameter: `low` to `high` inclusive."""

    name: str
    low: float
    high: float
    kind: str
    """int, float or log (floats, sampled on a log scale)."""


def parse_grid(items: list[str] | None, specs: Mapping[str, Param]) -> dict[str, list[str]]:
    """`["fast=5,10", "slow=50"]` -> {"fast": ["5", "10"], "slow": ["50"]}, every value checked by its spec."""
    axes = {name: [v.strip() for v in values.split(",") if v.strip()]
            for name, values in parse_assignments(items).items()}
    for name, values in axes.items():
        spec = _spec(specs, "--grid", name)
        if not values:
            raise ParamError(f"--grid {name}: no values")
        for value in values:
            spec.parse(name, value)
    return axes


def combinations(axes: Mapping[str, list[str]], fixed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the axes' values (the last axis varying fastest), on top of `fixed`."""
    names = list(axes)
    return [{**fixed, **dict(zip(names, combo))} for combo in itertools.product(*(axes[n] for n in names))]


def parse_ranges(items: list[str] | None, specs: Mapping[str, Param]) -> list[ParamRange]:
    """`["fast=5:50", "x=0.01:1:log"]` -> ranges; the kind defaults to the parameter's type (int or float)."""
    ranges = []
    for name, text in parse_assignments(items).items():
        spec = _spec(specs, "--param-range", name)
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ParamError(f"--param-range {name}={text}: expected LOW:HIGH or LOW:HIGH:{'|'.join(RANGE_KINDS)}")
        kind = parts[2].strip() if len(parts) == 3 else ("int" if spec.type is int else "float")
        if kind not in RANGE_KINDS:
            raise ParamError(f"--param-range {name}: kind {kind!r} is not one of {', '.join(RANGE_KINDS)}")
        if spec.type not in (int, float):
            raise ParamError(f"--param-range {name}: a {spec.type_name} parameter has no range; give its values "
                             "with --grid")
        if spec.type is int and kind != "int":
            raise ParamError(f"--param-range {name}: an int parameter takes an int range")
        try:
            low, high = (int(p) if kind == "int" else float(p) for p in parts[:2])
        except ValueError:
            raise ParamError(f"--param-range {name}={text}: LOW and HIGH must be {kind} numbers") from None
        if not low < high:
            raise ParamError(f"--param-range {name}={text}: LOW must be below HIGH")
        if kind == "log" and low <= 0:
            raise ParamError(f"--param-range {name}={text}: a log range must be above 0")
        for bound in (low, high):
            spec.parse(name, bound)
        ranges.append(ParamRange(name, low, high, kind))
    return ranges


def typed(params: Mapping[str, Any], specs: Mapping[str, Param]) -> dict[str, Any]:
    """Parameter values as their declared types (a grid's are the text typed), for a results table."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        spec = specs.get(name)
        parsed = spec.parse(name, value) if spec is not None else value
        out[name] = parsed if isinstance(parsed, (int, float, str, bool)) or parsed is None else str(parsed)
    return out


def _spec(specs: Mapping[str, Param], flag: str, name: str) -> Param:
    spec = specs.get(name)
    if spec is None:
        raise ParamError(f"{flag} {name}: unknown parameter (known: {', '.join(specs) or 'none'})")
    return spec
