"""What can go wrong talking to an exchange, in three kinds a caller (the CLI, a feed) acts on differently."""

from __future__ import annotations

from typing import Literal

Kind = Literal["refused", "unreachable", "exchange"]


class ExchangeFailure(Exception):
    """`refused`: the request itself is wrong (unknown exchange, symbol or timeframe); retrying will not help.
    `unreachable`: the network or the exchange is down; a retry later may work.
    `exchange`: anything else the exchange answered (rate limit, server error)."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message


def classify(exc: BaseException) -> ExchangeFailure:
    """One ccxt exception as an ExchangeFailure with a one-line message."""
    import ccxt

    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    if isinstance(exc, ExchangeFailure):
        return exc
    if isinstance(exc, (ccxt.BadSymbol, ccxt.NotSupported, ccxt.BadRequest, ccxt.AuthenticationError)):
        return ExchangeFailure("refused", text)
    if isinstance(exc, (ccxt.NetworkError, OSError)) and not isinstance(exc, ccxt.DDoSProtection):
        return ExchangeFailure("unreachable", f"exchange not reachable: {text}")
    return ExchangeFailure("exchange", text)
