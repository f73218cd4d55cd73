"""The feed symbols' instruments as the exchange last gave them, kept in the daemon's home.

A daemon restarted while an exchange is unreachable (an outage, a network cut) starts from these
instead of failing: its journal's ticks and lots keep the meaning they were written with, and the
feeds connect when the exchange is back (until then the symbols are stale and refuse new orders).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

from tradsys.engine.instrument import Instrument

FILE = "feed_markets.json"


def load(path: Path) -> dict[str, Instrument]:
    """The cached instruments by symbol; none when the file is missing or unreadable (the caller then
    says that nothing is cached)."""
    try:
        doc = json.loads(path.read_text())
        return {symbol: Instrument(symbol, entry["base"], entry["quote"], Decimal(entry["tick_size"]),
                                   Decimal(entry["lot_size"]), int(entry["min_qty"]), int(entry["max_qty"]))
                for symbol, entry in doc["instruments"].items()}
    except (OSError, ValueError, KeyError, TypeError, ArithmeticError):
        return {}


def save(path: Path, instruments: dict[str, Instrument]) -> None:
    """Merge `instruments` into the file, written whole and renamed into place so that a crash leaves
    the old file or the new one."""
    merged = load(path) | instruments
    doc = {"instruments": {symbol: {"base": i.base, "quote": i.quote, "tick_size": str(i.tick_size),
                                    "lot_size": str(i.lot_size), "min_qty": i.min_qty, "max_qty": i.max_qty}
                           for symbol, i in sorted(merged.items())}}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(temporary, path)
