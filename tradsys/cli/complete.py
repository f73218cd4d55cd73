"""Shell completion of the names only the daemon knows: symbols and live strategy kinds.

Commands and options complete from the command tree itself (`tradsys --install-completion`). These
ask the running daemon, briefly: with no daemon, or one slow to answer, they complete nothing
rather than keep the shell waiting.
"""

from collections.abc import Callable
from typing import Any

TIMEOUT = 0.5
"""Seconds a completion waits for the daemon."""


def _ask(names: Callable[[Any], list[str]]) -> list[str]:
    """`names(client)` from the daemon, or [] when it cannot answer within TIMEOUT."""
    import grpc

    from tradsys.cli.client import Client, CliError

    try:
        client = Client()
    except CliError:
        return []
    try:
        return names(client)
    except (grpc.RpcError, CliError):
        return []
    finally:
        client.close()


def _symbols(client: Any) -> list[str]:
    from tradsys.proto import marketdata_pb2 as md

    reply = client.market.ListInstruments(md.ListInstrumentsRequest(), metadata=client.metadata, timeout=TIMEOUT)
    return [i.symbol for i in reply.instruments]


def _kinds(client: Any) -> list[str]:
    from tradsys.proto import strategy_pb2 as pb

    reply = client.strategy.ListStrategies(pb.ListStrategiesRequest(), metadata=client.metadata, timeout=TIMEOUT)
    return [k.kind for k in reply.kinds]


def symbols(incomplete: str) -> list[str]:
    """The daemon's symbols that start with what was typed (case-insensitive)."""
    return [s for s in _ask(_symbols) if s.lower().startswith(incomplete.lower())]


def strategies(incomplete: str) -> list[str]:
    """The strategy kinds the daemon runs that start with what was typed."""
    return [k for k in _ask(_kinds) if k.startswith(incomplete)]


def builtin_strategies(incomplete: str) -> list[str]:
    """The built-in strategies a backtest runs (no daemon needed) that start with what was typed."""
    from tradsys.engine.strategy import BUILTINS

    return [name for name in BUILTINS if name.startswith(incomplete)]
