"""The one JSON codec for what the store writes: journal commands, strategy params, alert labels,
and the odd fields of a rejected order.

Compact text with Decimals as their exact decimal string; read back with Decimals for every
non-integer number, so that a replayed command is the command that was applied.
"""

import json
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

import orjson


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)  # exact; the engine reads decimal strings and Decimals alike
    raise TypeError(f"cannot journal a {type(value).__name__}: {value!r}")


if c_make_encoder is not None:
    # json.dumps builds a new C encoder on every call, which is half its cost for a command.
    _encode = c_make_encoder(None, _default, encode_basestring, None, ":", ",", False, False, True)

    def _stdlib_dumps(value: object) -> str:
        return "".join(_encode(value, 0))
else:  # pragma: no cover - CPython always has the C encoder
    _stdlib_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default).encode


def dumps(value: object) -> str:
    """Compact JSON; Decimals as their exact decimal string.

    orjson, because the engine thread encodes every command it journals. It writes what the
    stdlib encoder writes (a float's exponent may differ in form, not in value), except that it
    writes NaN and the infinities as null and refuses integers beyond 64 bits: any output with a
    null, or a refusal, is written by the stdlib encoder instead.
    """
    try:
        out = orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError:
        return _stdlib_dumps(value)
    if b"null" in out:
        return _stdlib_dumps(value)
    return out.decode()


def loads(text: str | bytes) -> Any:
    """What `dumps` wrote, with every non-integer number as an exact Decimal."""
    return json.loads(text, parse_float=Decimal)
