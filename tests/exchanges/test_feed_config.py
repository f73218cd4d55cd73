"""`--feed` / `[feeds]` settings and instruments from ccxt's market structure."""

from decimal import Decimal

import pytest

from tradsys.daemon.config import ConfigError, load_config
from tradsys.exchanges import ExchangeFailure, ccxt_symbol, tradsys_symbol
from tradsys.exchanges.connect import moved
from tradsys.exchanges.feed_config import feed_settings, instrument


@pytest.mark.parametrize(("text", "ours", "theirs"), [
    ("BTC/USDT", "BTC-USDT", "BTC/USDT"), ("btc-usdt", "BTC-USDT", "BTC/USDT"),
    ("BTC/USDT:USDT", "BTC-USDT-USDT", "BTC/USDT:USDT"),
])
def test_both_spellings(text: str, ours: str, theirs: str) -> None:
    assert tradsys_symbol(text) == ours and ccxt_symbol(text) == theirs and ccxt_symbol(ours) == theirs


def test_flags_replace_the_files_symbols_and_keep_its_endpoints() -> None:
    raw = {"symbols": ["binance:BTC/USDT"], "depth": 5, "binance": {"api_url": "http://127.0.0.1:1"}}
    settings = feed_settings(raw, ("binance:ETH-USDT", "kraken:BTC/USD"))
    assert settings.symbols == {"binance": {"ETH/USDT": "ETH-USDT"}, "kraken": {"BTC/USD": "BTC-USD"}}
    assert settings.depth == 5 and settings.endpoints == {"binance": {"api_url": "http://127.0.0.1:1"}}
    assert feed_settings(raw).symbols == {"binance": {"BTC/USDT": "BTC-USDT"}}


@pytest.mark.parametrize(("raw", "says"), [
    ({"symbol": ["binance:BTC/USDT"]}, "unknown key(s) symbol"),
    ({"depth": 0}, "depth must be a positive integer"),
    ({"binance": {"url": "x"}}, "[feeds.binance]: unknown key(s) url"),
    ({"symbols": ["BTC/USDT"]}, "expected EXCHANGE:SYMBOL"),
])
def test_bad_feed_settings_are_refused(raw: dict, says: str) -> None:
    with pytest.raises(ExchangeFailure) as caught:
        feed_settings(raw)
    assert says in caught.value.message


def test_a_bad_feed_flag_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected EXCHANGE:SYMBOL"):
        load_config(env={}, overrides={"feeds": ["BTC/USDT"]})
    assert load_config(env={"TRADSYS_FEEDS": "binance:BTC/USDT, binance:ETH/USDT"}).feeds == (
        "binance:BTC/USDT", "binance:ETH/USDT")


def test_an_instrument_takes_tick_lot_and_amount_limits_from_the_market() -> None:
    market = {"base": "BTC", "quote": "USDT", "precision": {"price": 0.01, "amount": 1e-05},
              "limits": {"amount": {"min": 1e-05, "max": 9000.0}}}
    inst = instrument("BTC-USDT", market)
    assert (inst.tick_size, inst.lot_size, inst.min_qty, inst.max_qty) == (Decimal("0.01"), Decimal("0.00001"), 1, 900_000_000)
    assert instrument("X-Y", {**market, "precision": {"price": 2, "amount": 3}}).tick_size == Decimal("0.01")


def test_moved_endpoints_keep_their_paths() -> None:
    api = {"public": "https://api.binance.com/api/v3", "ws": {"spot": "wss://stream.binance.com:9443/ws"}}
    assert moved(api, "http://127.0.0.1:8", "ws://127.0.0.1:9/stream") == {
        "public": "http://127.0.0.1:8/api/v3", "ws": {"spot": "ws://127.0.0.1:9/stream/ws"}}
