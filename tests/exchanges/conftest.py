"""A fake Binance on 127.0.0.1 for the real ccxt to talk to; nothing here reaches any other address."""

from collections.abc import Iterator

import pytest

from tests.exchanges.fake_binance import MINUTE_MS, FakeBinance

LISTED_MS = 1_704_067_200_000
"""2024-01-01T00:00Z: the fake's first bar."""


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    exchange = FakeBinance(LISTED_MS, LISTED_MS + 5_000 * MINUTE_MS).start()
    exchange.add_market("BTC", "USDT")
    exchange.add_market("ETH", "USDT", tick="0.01", lot="0.0001")
    try:
        yield exchange
    finally:
        exchange.stop()
