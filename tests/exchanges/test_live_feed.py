"""A daemon paper-trading a live market: ccxt.pro against the fake Binance, the mirror in the venue.

The fake is on 127.0.0.1; the daemon reaches it through `[feeds.binance] api_url, ws_url`.
"""

import random
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from tests.conftest import DaemonProcess, eventually, start_daemon
from tests.exchanges.conftest import LISTED_MS
from tests.exchanges.fake_binance import MINUTE_MS, FakeBinance
from tradsys.proto import alerts_pb2 as al
from tradsys.proto import alerts_pb2_grpc as al_grpc
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc
from tradsys.proto import strategy_pb2 as st
from tradsys.proto import strategy_pb2_grpc as st_grpc
from tradsys.proto import ws_pb2

SYMBOL = "BTC-USDT"
BIDS = {100.00 - 0.1 * i: 1.0 + i for i in range(25)}
ASKS = {100.10 + 0.1 * i: 1.0 + i for i in range(25)}
DEPTH = 20


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBinance]:
    exchange = FakeBinance(LISTED_MS, LISTED_MS + 10 * MINUTE_MS).start()
    exchange.add_market("BTC", "USDT", tick="0.01", lot="0.001")
    exchange.set_levels("BTCUSDT", {round(p, 2): q for p, q in BIDS.items()}, {round(p, 2): q for p, q in ASKS.items()})
    yield exchange
    exchange.stop()


@pytest.fixture(scope="module")
def live(fake: FakeBinance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home: Path = tmp_path_factory.mktemp("home")
    (home / "config.toml").write_text(f"""
[feeds]
depth = {DEPTH}

[feeds.binance]
api_url = "{fake.api_url}"
ws_url = "{fake.ws_url}"
""")
    daemon = start_daemon(home, "--no-simulate", "--feed", "binance:BTC/USDT")
    eventually(lambda: venue_book(daemon) == exchange_book(fake), timeout=30)
    yield daemon
    daemon.kill(signal.SIGTERM)


def venue_book(daemon: DaemonProcess) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    stub = md_grpc.MarketDataServiceStub(daemon.channel())
    book = stub.GetBook(md.GetBookRequest(symbol=SYMBOL, depth=100), metadata=daemon.metadata(), timeout=5).book
    return ({Decimal(lv.price): Decimal(lv.qty) for lv in book.bids}, {Decimal(lv.price): Decimal(lv.qty) for lv in book.asks})


def exchange_book(fake: FakeBinance) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    bids, asks = fake.book("BTCUSDT")
    top_bids = sorted(bids.items(), reverse=True)[:DEPTH]
    top_asks = sorted(asks.items())[:DEPTH]
    return ({_dec(p): _dec(q) for p, q in top_bids}, {_dec(p): _dec(q) for p, q in top_asks})


def _dec(value: float) -> Decimal:
    return Decimal(repr(value)).normalize()


def normal(book: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]) -> tuple[dict, dict]:
    return tuple({p.normalize(): q.normalize() for p, q in side.items()} for side in book)  # type: ignore[return-value]


def place(daemon: DaemonProcess, side: int, qty: str, price: str, tif: int = common.TIME_IN_FORCE_GTC) -> pb.PlaceOrderResponse:
    stub = pb_grpc.OrderServiceStub(daemon.channel())
    return stub.PlaceOrder(pb.PlaceOrderRequest(account="paper", symbol=SYMBOL, side=side, qty=qty, price=price,
                                                type=common.ORDER_TYPE_LIMIT, tif=tif),
                           metadata=daemon.metadata(), timeout=5)


def refused_as_stale(daemon: DaemonProcess) -> bool:
    """Whether a small IOC buy is refused because the symbol's feed is stale."""
    try:
        place(daemon, common.SIDE_BUY, "0.1", "98.00", common.TIME_IN_FORCE_IOC)
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "feed_stale" in (exc.details() or "")
    return False


def alert_states(daemon: DaemonProcess) -> list[int]:
    stub = al_grpc.AlertServiceStub(daemon.channel())
    alerts = stub.ListAlerts(al.ListAlertsRequest(), metadata=daemon.metadata(), timeout=5).alerts
    return [a.alert.state for a in alerts if a.alert.rule == "exchange_feed_stale"]


def test_the_venue_book_equals_the_exchange_book_at_every_step(fake: FakeBinance, live: DaemonProcess) -> None:
    rng = random.Random(5)
    for _ in range(40):
        bids = {round(99.0 + 0.01 * rng.randrange(100), 2): rng.choice([0, 0.5, 1.25, 3.0]) for _ in range(rng.randint(1, 4))}
        asks = {round(100.10 + 0.01 * rng.randrange(100), 2): rng.choice([0, 0.75, 2.0]) for _ in range(rng.randint(1, 4))}
        fake.set_levels("BTCUSDT", bids, asks)
        expected = exchange_book(fake)
        eventually(lambda: normal(venue_book(live)) == expected, timeout=10, interval=0.02)


def test_a_marketable_paper_order_walks_the_mirrored_book(fake: FakeBinance, live: DaemonProcess) -> None:
    asks = sorted(exchange_book(fake)[1].items())
    want = asks[0][1] + asks[1][1] / 2
    answer = place(live, common.SIDE_BUY, str(want), str(asks[2][0]), common.TIME_IN_FORCE_IOC)
    fills = [(Decimal(f.price), Decimal(f.qty)) for f in answer.fills]
    assert fills == [asks[0], (asks[1][0], asks[1][1] / 2)]
    assert Decimal(answer.order.filled_qty) == want
    assert all(f.liquidity == common.LIQUIDITY_TAKER for f in answer.fills)


def test_a_resting_paper_order_fills_when_a_trade_prints_through_it(fake: FakeBinance, live: DaemonProcess) -> None:
    best_bid = max(exchange_book(fake)[0])
    price = best_bid + Decimal("0.01")
    order = place(live, common.SIDE_BUY, "0.5", str(price)).order
    assert order.status == common.ORDER_STATUS_NEW
    stub = pb_grpc.OrderServiceStub(live.channel())

    def state() -> pb.Order:
        return stub.GetOrder(pb.GetOrderRequest(order_id=order.order_id), metadata=live.metadata(), timeout=5).order

    fake.print_trade("BTCUSDT", float(price), 0.2, buyer_is_maker=True)  # at its price: not through
    fake.print_trade("BTCUSDT", float(price - Decimal("0.05")), 0.3, buyer_is_maker=True)
    eventually(lambda: Decimal(state().filled_qty) == Decimal("0.3"), timeout=10)
    fake.print_trade("BTCUSDT", float(price - Decimal("0.05")), 1.0, buyer_is_maker=True)
    eventually(lambda: state().status == common.ORDER_STATUS_FILLED, timeout=10)
    final = state()
    assert Decimal(final.avg_fill_price) == price and Decimal(final.filled_qty) == Decimal("0.5")
    eventually(lambda: normal(venue_book(live)) == exchange_book(fake), timeout=10)


def test_exchange_trades_are_on_the_tape_and_in_the_bars(fake: FakeBinance, live: DaemonProcess) -> None:
    stub = md_grpc.MarketDataServiceStub(live.channel())

    def tape() -> list[tuple[str, Decimal, Decimal]]:
        trades = stub.GetTrades(md.GetTradesRequest(symbol=SYMBOL, limit=1000), metadata=live.metadata(), timeout=5).trades
        return [(t.trade_id, Decimal(t.price), Decimal(t.qty)) for t in trades]

    price = max(exchange_book(fake)[0]) - Decimal("1")  # below every bid: fills no paper order
    fake.print_trade("BTCUSDT", float(price), 0.25, buyer_is_maker=True)
    eventually(lambda: any(p == price and q == Decimal("0.25") and tid.startswith("binance-") for tid, p, q in tape()),
               timeout=10)

    def low() -> Decimal | None:
        bars = stub.GetBars(md.GetBarsRequest(symbol=SYMBOL, interval="1s"), metadata=live.metadata(), timeout=5).bars
        return min((Decimal(b.low) for b in bars), default=None)

    eventually(lambda: low() == price, timeout=10)


@pytest.mark.parametrize("fault", ["drop", "gap"])
def test_a_stale_feed_refuses_orders_then_resyncs(fake: FakeBinance, live: DaemonProcess, fault: str) -> None:
    fake.hold_snapshots = True
    try:
        if fault == "drop":
            fake.drop_connections()
        else:
            fake.set_levels("BTCUSDT", {99.5: 7.0}, {}, skip=True)
        eventually(lambda: refused_as_stale(live), timeout=10)
        assert venue_book(live) == ({}, {})
        eventually(lambda: ws_pb2.Alert.STATE_FIRING in alert_states(live), timeout=10)
    finally:
        fake.hold_snapshots = False
    eventually(lambda: normal(venue_book(live)) == exchange_book(fake), timeout=30)
    assert place(live, common.SIDE_BUY, "0.1", "98.00", common.TIME_IN_FORCE_IOC).order.status == common.ORDER_STATUS_CANCELLED
    eventually(lambda: alert_states(live)[-1:] == [ws_pb2.Alert.STATE_RESOLVED], timeout=10)


PRINTS = '''
from tradsys.engine.strategy import Strategy


class Prints(Strategy):
    def on_trade(self, trade):
        with open({log!r}, "a") as out:
            out.write(f"{{trade.symbol}} {{trade.price:.2f}} {{trade.qty}} {{trade.side}}\\n")
'''


def test_a_strategy_on_a_feed_symbol_sees_the_exchange_trades(fake: FakeBinance, live: DaemonProcess,
                                                               tmp_path: Path) -> None:
    log, code = tmp_path / "prints.log", tmp_path / "prints.py"
    code.write_text(PRINTS.format(log=str(log)))
    stub = st_grpc.StrategyServiceStub(live.channel())
    sid = stub.StartStrategy(st.StartStrategyRequest(kind=f"{code}:Prints", account="prints", symbols=[SYMBOL]),
                             metadata=live.metadata(), timeout=10).status.id
    try:
        price = max(exchange_book(fake)[0]) - Decimal("2")  # below every bid: fills no paper order
        want = f"{SYMBOL} {price:.2f} 0.125 sell"

        def seen() -> bool:
            fake.print_trade("BTCUSDT", float(price), 0.125, buyer_is_maker=True)  # until the strategy is running
            return log.exists() and want in log.read_text().splitlines()

        eventually(seen, timeout=15, interval=0.2)
    finally:
        stub.StopStrategy(st.StopStrategyRequest(id=sid), metadata=live.metadata(), timeout=10)
