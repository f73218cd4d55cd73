"""Which live feeds the daemon runs: `--feed EXCHANGE:SYMBOL` or config.toml's `[feeds]`.

```toml
[feeds]
symbols = ["binance:BTC/USDT", "binance:ETH/USDT"]
depth = 20            # exchange levels mirrored per side
max_trades = 10000    # prints waiting for the engine per symbol; past it the oldest are dropped

[feeds.binance]       # optional: other endpoints (testnet, proxy)
api_url = "https://testnet.binance.vision"
ws_url = "wss://stream.testnet.binance.vision"
```
`--feed` flags replace `symbols`; the other keys still apply.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradsys.engine.instrument import Instrument
from tradsys.exchanges import market_cache
from tradsys.exchanges.errors import ExchangeFailure
from tradsys.exchanges.symbols import ccxt_symbol, tradsys_symbol

log = logging.getLogger("tradsys.exchanges")

SETTINGS = ("symbols", "depth", "max_trades")
ENDPOINTS = ("api_url", "ws_url")


@dataclass(frozen=True)
class FeedSettings:
    symbols: dict[str, dict[str, str]] = field(default_factory=dict)
    """exchange id -> {ccxt symbol: venue symbol}, in the order given."""
    depth: int = 20
    max_trades: int = 10_000
    endpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    """exchange id -> {"api_url": ..., "ws_url": ...}."""


def feed_settings(raw: Mapping[str, Any] | None, flags: tuple[str, ...] = ()) -> FeedSettings:
    """The `[feeds]` table (config.toml) with `--feed` flags; refuses unknown keys and bad values."""
    table = dict(raw or {})
    endpoints: dict[str, dict[str, str]] = {}
    for key, value in list(table.items()):
        if isinstance(value, Mapping):
            unknown = set(value) - set(ENDPOINTS)
            if unknown:
                raise ExchangeFailure("refused", f"[feeds.{key}]: unknown key(s) {', '.join(sorted(unknown))} "
                                                 f"(known: {', '.join(ENDPOINTS)})")
            endpoints[key.lower()] = {k: str(v) for k, v in value.items()}
            del table[key]
    unknown = set(table) - set(SETTINGS)
    if unknown:
        raise ExchangeFailure("refused", f"[feeds]: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(SETTINGS)})")
    specs = flags or tuple(table.get("symbols") or ())
    symbols: dict[str, dict[str, str]] = {}
    for spec in specs:
        exchange, _, symbol = str(spec).partition(":")
        if not symbol.strip():
            raise ExchangeFailure("refused", f"feed {spec!r}: expected EXCHANGE:SYMBOL such as binance:BTC/USDT")
        symbols.setdefault(exchange.strip().lower(), {})[ccxt_symbol(symbol)] = tradsys_symbol(symbol)
    numbers = {}
    for key in ("depth", "max_trades"):
        value = table.get(key, getattr(FeedSettings, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ExchangeFailure("refused", f"[feeds] {key} must be a positive integer, got {value!r}")
        numbers[key] = value
    return FeedSettings(symbols, numbers["depth"], numbers["max_trades"], endpoints)


def load_instruments(settings: FeedSettings, cache: Path | None = None) -> dict[str, Instrument]:
    """Each feed symbol as an instrument, its tick and lot from the exchange's market info (REST).

    With `cache` (a `market_cache` file), what the exchanges answer is kept there, and an exchange that
    cannot be reached (or fails) is answered from it, logged; a refusal (unknown symbol) is never."""
    from tradsys.exchanges.connect import load_market, make_exchange

    out: dict[str, Instrument] = {}
    fresh: dict[str, Instrument] = {}
    for exchange_id, symbols in settings.symbols.items():
        urls = settings.endpoints.get(exchange_id, {})
        try:
            exchange = make_exchange(exchange_id, api_url=urls.get("api_url"), ws_url=urls.get("ws_url"))
            for unified, symbol in symbols.items():
                fresh[symbol] = out[symbol] = instrument(symbol, load_market(exchange, unified))
        except ExchangeFailure as exc:
            if cache is None or exc.kind == "refused":
                raise
            cached = market_cache.load(cache)
            missing = [symbol for symbol in symbols.values() if symbol not in cached]
            if missing:
                raise ExchangeFailure(exc.kind, f"{exc.message} (and {cache} holds no instrument for "
                                                f"{', '.join(missing)} from an earlier start)") from exc
            log.warning("feeds.markets_from_cache", extra={"fields": {
                "exchange": exchange_id, "error": exc.message, "cache": str(cache),
                "symbols": ", ".join(symbols.values())}})
            out.update({symbol: cached[symbol] for symbol in symbols.values()})
    if cache is not None and fresh:
        market_cache.save(cache, fresh)
    return out


def instrument(symbol: str, market: Mapping[str, Any]) -> Instrument:
    """An Instrument from ccxt's market structure (precision as tick sizes, amount limits)."""
    precision, limits = market.get("precision") or {}, (market.get("limits") or {}).get("amount") or {}
    tick, lot = _step(precision.get("price")), _step(precision.get("amount"))
    if tick is None or lot is None:
        raise ExchangeFailure("refused", f"{symbol}: the exchange gives no price or amount precision")
    low, high = _number(limits.get("min")), _number(limits.get("max"))
    min_lots = max(1, int(low / lot)) if low is not None else 1
    max_lots = int(high / lot) if high is not None and high >= lot else 10**12
    try:
        return Instrument(symbol, str(market["base"]), str(market["quote"]), tick, lot, min_qty=min_lots, max_qty=max_lots)
    except ValueError as exc:
        raise ExchangeFailure("refused", str(exc)) from None


def _number(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    return number if number > 0 else None


def _step(value: object) -> Decimal | None:
    """A tick or lot size: ccxt gives it as a float, or as an integer count of decimal places
    for the few exchanges still in that precision mode."""
    number = _number(value)
    if number is not None and isinstance(value, int):
        return Decimal(1).scaleb(-int(number))
    return number
