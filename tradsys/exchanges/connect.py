"""Making a ccxt exchange object: by id, rate-limited, its endpoints optionally moved (testnets, proxies).

`api_url` and `ws_url` replace the scheme, host and port of every REST or WebSocket endpoint the
exchange has; a path in them goes before each endpoint's own path. So
`--api-url https://testnet.binance.vision` reaches Binance's spot testnet, and the tests point
ccxt at a fake exchange on 127.0.0.1 the same way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tradsys.exchanges.errors import ExchangeFailure

WS_KEY = "ws"
"""Where ccxt.pro keeps an exchange's WebSocket endpoints inside `urls['api']`."""


def make_exchange(exchange_id: str, *, pro: bool = False, api_url: str | None = None,
                  ws_url: str | None = None, timeout_ms: int = 10_000) -> Any:
    """A ccxt (or, with `pro`, ccxt.pro) exchange with `enableRateLimit` on; spot markets only."""
    import ccxt
    import ccxt.pro

    module: Any = ccxt.pro if pro else ccxt
    name = exchange_id.strip().lower()
    if name not in module.exchanges:
        where = "ccxt.pro" if pro else "ccxt"
        raise ExchangeFailure("refused", f"unknown exchange {exchange_id!r} ({where} knows {len(module.exchanges)}, "
                                         "e.g. binance, kraken, coinbase)")
    exchange = getattr(module, name)({"enableRateLimit": True, "timeout": timeout_ms})
    # Spot only: Binance would otherwise also load its futures markets from other hosts.
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    if api_url is not None or ws_url is not None:
        exchange.urls["api"] = moved(exchange.urls["api"], api_url, ws_url)
    return exchange


def moved(api: Any, api_url: str | None, ws_url: str | None, websocket: bool = False) -> Any:
    """A copy of ccxt's `urls['api']` (a URL, or nested dicts of them) with the given origins put in."""
    if isinstance(api, dict):
        return {key: moved(value, api_url, ws_url, websocket or key == WS_KEY) for key, value in api.items()}
    if not isinstance(api, str):
        return api
    target = ws_url if websocket or api.startswith(("ws://", "wss://")) else api_url
    if target is None:
        return api
    new, old = urlsplit(target), urlsplit(api)
    return urlunsplit((new.scheme, new.netloc, new.path.rstrip("/") + old.path, old.query, old.fragment))


def load_market(exchange: Any, symbol: str) -> dict[str, Any]:
    """The exchange's market for `symbol` (either spelling), loading markets first; refused when unknown."""
    from tradsys.exchanges.errors import classify
    from tradsys.exchanges.symbols import ccxt_symbol

    try:
        exchange.load_markets()
    except Exception as exc:
        raise classify(exc) from exc
    unified = ccxt_symbol(symbol)
    market = exchange.markets.get(unified)
    if market is None:
        raise ExchangeFailure("refused", f"{exchange.id} has no market {unified}")
    return market
