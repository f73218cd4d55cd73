"""Declared strategy parameters: a type, a default and a description, validated once at start.

A strategy class lists its parameters as `params = {"fast": Param(int, 10, "fast SMA length", min=1)}`.
Values arrive as text (CLI `--param k=v`, gRPC string map) or as Python values (the Python API);
`resolve_params` turns them into typed values with the defaults filled in, or raises `ParamError`
naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tradsys.durations import grammar, parse_seconds


class ParamError(ValueError):
    """A parameter value that the strategy cannot take: unknown, missing, wrong type or out of range."""


class Duration(float):
    """Seconds, written "500ms", "5s", "1m", "1h" (see `tradsys.durations`) or a plain number of seconds."""


TYPE_NAMES = {int: "int", float: "float", Decimal: "decimal", str: "string", bool: "bool", Duration: "duration"}
REQUIRED = object()


@dataclass(frozen=True)
class Param:
    type: type
    default: Any = REQUIRED
    description: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, self.type.__name__)

    def default_text(self) -> str:
        return "" if self.required or self.default is None else format_value(self.default)

    def parse(self, name: str, value: Any) -> Any:
        kind = self.type
        try:
            if value is None:
                parsed = None
            elif kind is bool:
                parsed = _bool(value)
            elif kind is Duration:
                parsed = _duration(value)
            elif kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                parsed = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif kind is float:
                parsed = float(value)
            elif kind is Decimal:
                parsed = Decimal(str(value).strip())
                if not parsed.is_finite():
                    raise ValueError
            elif kind is str:
                parsed = str(value)
            else:
                parsed = kind(value)
        except (ValueError, TypeError, InvalidOperation):
            expected = f" ({grammar(bare=True)})" if kind is Duration else ""
            raise ParamError(f"{name}: {value!r} is not a valid {self.type_name}{expected}") from None
        if parsed is None:
            return None
        if isinstance(parsed, float) and parsed != parsed:
            raise ParamError(f"{name}: NaN is not allowed")
        if self.min is not None and parsed < self.min:
            raise ParamError(f"{name}: {format_value(parsed)} is below the minimum {self.min:g}")
        if self.max is not None and parsed > self.max:
            raise ParamError(f"{name}: {format_value(parsed)} is above the maximum {self.max:g}")
        if self.choices is not None and parsed not in self.choices:
            raise ParamError(f"{name}: {parsed!r} is not one of {', '.join(map(str, self.choices))}")
        return parsed


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError


def _duration(value: Any) -> Duration:
    """Non-negative; text from the CLI or gRPC may carry spaces and capitals."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        value = str(value).strip().lower()
    seconds = parse_seconds(value, bare=True)
    if seconds < 0:
        raise ValueError
    return Duration(seconds)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Duration):
        return f"{float(value):g}s"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def resolve_params(specs: Mapping[str, Param], values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed values for every declared parameter, defaults filled in; ParamError on anything wrong."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(specs))
    if unknown:
        known = ", ".join(specs) or "none"
        raise ParamError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (known: {known})")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in values:
            out[name] = spec.parse(name, values[name])
        elif spec.required:
            raise ParamError(f"{name}: required ({spec.description or spec.type_name})")
        else:
            out[name] = spec.default
    return out


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """`["fast=10", "slow=30"]` -> {"fast": "10", "slow": "30"}; ParamError on an item without '='."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"expected NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


class Params(dict):
    """Resolved parameters; also readable as attributes (`self.p.fast`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
