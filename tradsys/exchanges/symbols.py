"""The two spellings of a pair: ccxt's `BTC/USDT` and the project's `BTC-USDT` (files, instruments)."""

from __future__ import annotations


def tradsys_symbol(symbol: str) -> str:
    """`BTC/USDT` or `BTC-USDT` -> `BTC-USDT`; a settle suffix (`BTC/USDT:USDT`) is kept after a dash."""
    text = symbol.strip().upper()
    return text.replace("/", "-").replace(":", "-")


def ccxt_symbol(symbol: str) -> str:
    """`BTC-USDT` or `BTC/USDT` -> `BTC/USDT`, the form ccxt's markets are keyed by."""
    text = symbol.strip().upper()
    if "/" in text:
        return text
    base, dash, rest = text.partition("-")
    if not dash:
        return text
    quote, dash, settle = rest.partition("-")
    return f"{base}/{quote}:{settle}" if dash else f"{base}/{quote}"
