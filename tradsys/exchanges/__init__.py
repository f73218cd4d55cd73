"""Real exchanges through ccxt (REST) and ccxt.pro (WebSocket): history downloads and live feeds.

ccxt is imported by the functions that need it, never at import time here, so the rest of
TradSys (and the CLI's other commands) starts without it.
"""

from tradsys.exchanges.errors import ExchangeFailure
from tradsys.exchanges.symbols import ccxt_symbol, tradsys_symbol

__all__ = ["ExchangeFailure", "ccxt_symbol", "tradsys_symbol"]
