"""A daemon restarted while its exchange is down starts from the instruments cached at its last start,
refuses orders on the stale symbols, and mirrors the book once the exchange is back."""

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from tests.conftest import eventually, free_port, start_daemon
from tests.exchanges.conftest import LISTED_MS
from tests.exchanges.fake_binance import MINUTE_MS, FakeBinance
from tests.exchanges.test_live_feed import (ASKS, BIDS, SYMBOL, exchange_book, normal, place, refused_as_stale,
                                             venue_book)
from tradsys.engine.instrument import Instrument
from tradsys.exchanges import market_cache
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc

FEED = ("--no-simulate", "--feed", "binance:BTC/USDT")


def exchange(port: int = 0) -> FakeBinance:
    fake = FakeBinance(LISTED_MS, LISTED_MS + 10 * MINUTE_MS, port=port).start()
    fake.add_market("BTC", "USDT", tick="0.01", lot="0.001")
    fake.set_levels("BTCUSDT", {round(p, 2): q for p, q in BIDS.items()}, {round(p, 2): q for p, q in ASKS.items()})
    return fake


def configure(home: Path, port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f"""
[feeds]
depth = 20

[feeds.binance]
api_url = "http://127.0.0.1:{port}"
ws_url = "ws://127.0.0.1:{port}/stream"
""")


def test_the_cache_keeps_ticks_and_lots_exact_and_merges(tmp_path: Path) -> None:
    path = tmp_path / market_cache.FILE
    btc = Instrument("BTC-USDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), min_qty=5, max_qty=9_000_000)
    eth = Instrument("ETH-BTC", "ETH", "BTC", Decimal("0.000001"), Decimal("0.01"))
    market_cache.save(path, {"BTC-USDT": btc})
    market_cache.save(path, {"ETH-BTC": eth})
    assert market_cache.load(path) == {"BTC-USDT": btc, "ETH-BTC": eth}
    assert json.loads(path.read_text())["instruments"]["BTC-USDT"]["lot_size"] == "0.00001"
    path.write_text("{not json")
    assert market_cache.load(path) == {}


def test_a_restart_during_an_outage_starts_from_the_cache_and_resyncs_when_the_exchange_is_back(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    fake = exchange()
    port = fake.port
    configure(home, port)
    try:
        daemon = start_daemon(home, *FEED)
        eventually(lambda: venue_book(daemon) == exchange_book(fake), timeout=30)
        daemon.kill(signal.SIGTERM)
    finally:
        fake.stop()
    cached = json.loads((home / market_cache.FILE).read_text())["instruments"]
    assert cached[SYMBOL]["tick_size"] == "0.01" and cached[SYMBOL]["lot_size"] == "0.001"

    daemon = start_daemon(home, *FEED)  # nothing listens on the exchange's port now
    back = None
    try:
        stub = md_grpc.MarketDataServiceStub(daemon.channel())
        listed = stub.ListInstruments(md.ListInstrumentsRequest(), metadata=daemon.metadata(), timeout=10).instruments
        assert [(i.tick_size, i.lot_size) for i in listed if i.symbol == SYMBOL] == [("0.01", "0.001")]
        assert "feeds.markets_from_cache" in daemon.log.read_text()
        eventually(lambda: refused_as_stale(daemon), timeout=30)
        back = exchange(port)
        eventually(lambda: normal(venue_book(daemon)) == exchange_book(back), timeout=90)
        assert place(daemon, common.SIDE_BUY, "0.1", "98.00",
                     common.TIME_IN_FORCE_IOC).order.status == common.ORDER_STATUS_CANCELLED
    finally:
        daemon.kill(signal.SIGTERM)
        if back is not None:
            back.stop()


def test_with_nothing_cached_an_unreachable_exchange_fails_the_start_and_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure(home, free_port())
    done = subprocess.run([sys.executable, "-m", "tradsys", "daemon", "start", "--grpc-port", str(free_port()),
                           "--http-port", str(free_port()), *FEED], env={**os.environ, "TRADSYS_HOME": str(home)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "not reachable" in done.stderr and market_cache.FILE in done.stderr and SYMBOL in done.stderr, done.stderr
