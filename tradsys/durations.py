"""Durations as people write them: a decimal number followed by a unit, "500ms", "30s", "1.5m", "4h", "7d", "2w".

One grammar for every place that reads a duration: alert rules, bar intervals, strategy
parameters, token lifetimes. Digits are ASCII, units lower case (ms, s, m, h, d, w), no sign, no
spaces. A bare number means seconds only where the caller allows it (`bare=True`); a caller that
counts whole units (bar intervals, token lifetimes) asks for `whole=True`, digits without a
leading zero, so each length has one spelling per unit. Ranges (positive, non-negative, whole
seconds) are the callers' to check. Standard library only: the CLI imports this, and its start-up
time counts.
"""

from __future__ import annotations

import re
from typing import Final

SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
NANOS: Final = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 604800 * 10**9}

_FORM: Final = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ms|s|m|h|d|w)?")
_WHOLE: Final = re.compile(r"0|[1-9][0-9]*")


class DurationError(ValueError):
    """Text that is not a duration; the message states the grammar."""


def grammar(bare: bool = False, whole: bool = False) -> str:
    """The grammar in words, for error messages and help texts."""
    number = "a whole number (no leading zero)" if whole else "a number"
    text = f"{number} followed by ms, s, m, h, d or w, as in 30s, {'5m' if whole else '1.5m'}, 2h, 7d"
    return f"{text}; a bare number is seconds" if bare else text


def split_duration(text: object, *, bare: bool = False, whole: bool = False) -> tuple[str, str]:
    """(number, unit) as written; the unit of a bare number is "s"."""
    match = _FORM.fullmatch(text) if isinstance(text, str) else None
    if match is None or (match[2] is None and not bare) or (whole and _WHOLE.fullmatch(match[1]) is None):
        raise DurationError(f"{text!r} is not a duration: expected {grammar(bare, whole)}")
    return match[1], match[2] or "s"


def parse_seconds(value: object, *, bare: bool = False, whole: bool = False) -> float:
    """Seconds from duration text; with `bare`, an int or float is already seconds."""
    if bare and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    number, unit = split_duration(value, bare=bare, whole=whole)
    return float(number) * SECONDS[unit]


def parse_ns(text: str, *, bare: bool = False, whole: bool = False) -> int:
    """Nanoseconds, computed exactly (no float rounding); DurationError when finer than one."""
    number, unit = split_duration(text, bare=bare, whole=whole)
    integer, _, fraction = number.partition(".")
    scale = 10 ** len(fraction)
    ns, rest = divmod((int(integer or "0") * scale + int(fraction or "0")) * NANOS[unit], scale)
    if rest:
        raise DurationError(f"{text!r} is not a whole number of nanoseconds")
    return ns
