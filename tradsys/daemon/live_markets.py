"""Live exchange feeds in the daemon: their instruments, feed threads, mirror actor and alert.

`LiveMarkets.from_config` reads `--feed`/`[feeds]`, asks each exchange for its markets (tick and
lot of every feed symbol; an exchange it cannot reach is answered from the home's `market_cache`,
and a start-up with nothing cached fails with that reason) and
builds one `ExchangeFeed` thread per exchange and the `ExchangeMirror` actor. The daemon adds the
instruments to its venue, the mirror to its actors, and `signals`/`RULE` to its alerts.
"""

from __future__ import annotations

from typing import Any

from tradsys.daemon.alerts import Rule
from tradsys.daemon.config import Config
from tradsys.daemon.exchange_mirror import ExchangeMirror, Publish
from tradsys.engine.instrument import Instrument
from tradsys.exchanges import market_cache
from tradsys.exchanges.feed_config import FeedSettings, feed_settings, load_instruments
from tradsys.exchanges.live_feed import ExchangeFeed

STALE_SIGNAL = "exchange_feed_stale"
RULE = Rule("exchange_feed_stale", STALE_SIGNAL, "==", 1, 0, "warning",
            "the exchange feed of {symbol} is stale: new orders on it are refused until it resyncs")
"""Fires while a feed symbol is stale (halted), resolves when its book is live again."""


class LiveMarkets:
    def __init__(self, settings: FeedSettings, instruments: dict[str, Instrument]) -> None:
        self.settings = settings
        self.instruments = instruments
        self.feeds = [
            ExchangeFeed(exchange, symbols, depth=settings.depth, max_trades=settings.max_trades,
                         api_url=settings.endpoints.get(exchange, {}).get("api_url"),
                         ws_url=settings.endpoints.get(exchange, {}).get("ws_url"))
            for exchange, symbols in settings.symbols.items()
        ]
        self.mirror = ExchangeMirror(
            {symbol: (feed.exchange_id, state) for feed in self.feeds for symbol, state in feed.feeds.items()},
            instruments)

    @classmethod
    def from_config(cls, config: Config) -> LiveMarkets | None:
        """None when no feed is configured."""
        settings = feed_settings(config.raw.get("feeds"), config.feeds)
        if not settings.symbols:
            return None
        return cls(settings, load_instruments(settings, config.home / market_cache.FILE))

    @property
    def quotes(self) -> list[str]:
        return list(dict.fromkeys(inst.quote for inst in self.instruments.values()))

    def start(self, publish: Publish) -> None:
        self.mirror.publish = publish
        for feed in self.feeds:
            feed.start()

    def stop(self) -> None:
        for feed in self.feeds:
            feed.stop()

    def signals(self, now_ns: int) -> dict[str, dict[tuple, float]]:
        return {STALE_SIGNAL: {(("symbol", symbol),): float(stale) for symbol, stale in self.mirror.stale().items()}}

    def describe(self) -> dict[str, Any]:
        return {f"{feed.exchange_id}:{symbol}": ("stale: " + state.stale) if state.stale else "live"
                for feed in self.feeds for symbol, state in feed.feeds.items()}
