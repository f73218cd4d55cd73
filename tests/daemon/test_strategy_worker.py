"""Strategies off the engine thread, in a real daemon: a strategy that sleeps in its callbacks lags
(metrics, the `strategy_lagging` alert, conflated market data) while other clients' orders go as fast
as without it, and its own order events all reach it, in order."""

import json
import re
import signal
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.daemon.strategy_worker import MARKET_BACKLOG, StrategyWorker
from tradsys.engine import Venue
from tradsys.engine.strategy import BookData, Context, Params, Strategy, StrategyRunner, TradeData
from tradsys.proto import alerts_pb2 as al
from tradsys.proto import alerts_pb2_grpc as al_grpc
from tradsys.proto import common_pb2, orders_pb2, orders_pb2_grpc
from tradsys.proto import strategy_pb2 as spb
from tradsys.proto import strategy_pb2_grpc as spb_grpc
from tradsys.proto import ws_pb2

CONFIG = """
[market]
taker_rate = 20

[alerts]
rules = [{ name = "strategy_lagging", threshold = 2, for = "0s" }]
"""

SLEEPY = '''
import os
import time

from tradsys.engine.strategy import Strategy

FLAG, STATE = {flag!r}, {state!r}


class Sleepy(Strategy):
    """Sleeps 0.5 s in each trade and bar callback while FLAG exists; STATE counts the sleeps begun and ended."""

    bar_interval = "1s"

    def on_start(self):
        self.begun = self.ended = 0

    def nap(self):
        if os.path.exists(FLAG):
            self.begun += 1
            self.save()
            time.sleep(0.5)
            self.ended += 1
            self.save()

    def save(self):
        with open(STATE + ".tmp", "w") as out:
            out.write(f"{{self.begun}} {{self.ended}}")
        os.replace(STATE + ".tmp", STATE)

    def on_trade(self, trade):
        self.nap()

    def on_bar(self, bar):
        self.nap()
'''

LAGGARD = '''
import time

from tradsys.engine.strategy import Strategy


class Laggard(Strategy):
    """Sleeps 0.5 s on every book, trade and bar; places ORDERS bids below the market at the start
    and cancels each once accepted, logging every order event it gets."""

    bar_interval = "1s"

    def on_start(self):
        bid = self.ctx.book().bid
        for i in range({orders}):
            self.ctx.buy(0.001, bid * 0.98 - i * 0.01, post_only=True)

    def on_order(self, order):
        self.ctx.log(f"seen {{order.id}} {{order.status}}")
        if order.status == "new":
            self.ctx.cancel(order.id)

    def on_book(self, book):
        time.sleep(0.5)

    def on_trade(self, trade):
        time.sleep(0.5)

    def on_bar(self, bar):
        time.sleep(0.5)
'''

BLOCK = 60
"""Orders per measured block."""
PAIRS = 4
"""Alternating blocks without and with the sleeping strategy."""
ORDERS = 30


class Gated(Strategy):
    """Records what it gets; the first trade waits for `gate`."""

    def on_start(self) -> None:
        self.seen: list[object] = []
        self.gate = threading.Event()

    def on_trade(self, trade: TradeData) -> None:
        self.seen.append(trade.price)
        self.gate.wait(10)

    def on_book(self, book: BookData) -> None:
        self.seen.append("book")


def test_a_busy_worker_keeps_the_latest_market_events_and_one_tick() -> None:
    venue = Venue()
    runner = StrategyRunner("1", Gated, Params({}), Context(venue.instruments, ("BTC-USD",), "s-", "a"))
    book = BookData(0, "BTC-USD", 1.0, 2.0, None)
    worker = StrategyWorker("1", ("BTC-USD",), lambda: runner.start() and runner, lambda: None, lambda s: book,
                            lambda: 0)
    strategy: Gated = runner.strategy  # type: ignore[assignment]
    worker.market("trade", [TradeData(0, "BTC-USD", 0.0, 1.0, "buy")])
    eventually(lambda: strategy.seen == [0.0])  # in its first callback
    worker.market("trade", [TradeData(0, "BTC-USD", float(i), 1.0, "buy") for i in range(1, 151)])
    worker.tick(True)
    worker.tick(True)
    assert worker.lag()[0] == MARKET_BACKLOG + 1 and worker.lag()[1] > 0
    assert worker.conflated == {"trade": 150 - MARKET_BACKLOG, "book": 1}
    strategy.gate.set()
    eventually(lambda: worker.lag() == (0, 0.0))
    assert strategy.seen == [0.0] + [float(i) for i in range(151 - MARKET_BACKLOG, 151)] + ["book"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home = tmp_path_factory.mktemp("home")
    (home / "config.toml").write_text(CONFIG)
    proc = start_daemon(home, "--seed", "9", "--durability", "process", "--log-format", "json")
    proc.wait_quoted()
    yield proc
    if proc.proc.poll() is None:
        proc.kill(signal.SIGTERM)


def start(daemon: DaemonProcess, kind: str, account: str) -> str:
    stub = spb_grpc.StrategyServiceStub(daemon.channel())
    reply = stub.StartStrategy(spb.StartStrategyRequest(kind=kind, account=account, symbols=["BTC-USD"]),
                               metadata=daemon.metadata(), timeout=10)
    return str(reply.status.id)


def stop(daemon: DaemonProcess, sid: str) -> None:
    stub = spb_grpc.StrategyServiceStub(daemon.channel())
    stub.StopStrategy(spb.StopStrategyRequest(id=sid), metadata=daemon.metadata(), timeout=10)


def sleeps(state: Path) -> tuple[int, int]:
    """(begun, ended) sleeps of the Sleepy strategy."""
    try:
        begun, ended = state.read_text().split()
    except (FileNotFoundError, ValueError):
        return 0, 0
    return int(begun), int(ended)


def latencies(orders: orders_pb2_grpc.OrderServiceStub, metadata: tuple, count: int) -> list[float]:
    """Seconds each of `count` unary PlaceOrder calls took (IOC bids far below the market: cancelled
    unfilled); a block runs 5 s at most and a call 5 s, so that a blocked engine shows up in the
    figures without hanging the test."""
    request = orders_pb2.PlaceOrderRequest(account="probe", symbol="BTC-USD", side=common_pb2.SIDE_BUY,
                                           type=common_pb2.ORDER_TYPE_LIMIT, price="58000", qty="0.001",
                                           tif=common_pb2.TIME_IN_FORCE_IOC)
    took = []
    budget = time.monotonic() + 5
    while len(took) < count and (len(took) < 3 or time.monotonic() < budget):
        began = time.perf_counter()
        try:
            orders.PlaceOrder(request, metadata=metadata, timeout=5)
        except grpc.RpcError as exc:  # a refusal still measures a round trip, a deadline a blocked engine
            if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        took.append(time.perf_counter() - began)
    return took


def metric(daemon: DaemonProcess, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://{daemon.http}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_sleeping_strategy_does_not_slow_other_clients_orders(daemon: DaemonProcess, tmp_path: Path) -> None:
    flag, state = tmp_path / "slow", tmp_path / "state"
    code = tmp_path / "sleepy.py"
    code.write_text(SLEEPY.format(flag=str(flag), state=str(state)))
    sid = start(daemon, f"{code}:Sleepy", "sleepy")
    orders = orders_pb2_grpc.OrderServiceStub(daemon.channel())
    md = daemon.metadata()
    latencies(orders, md, 20)  # warm the channel
    idle: list[float] = []
    slow: list[float] = []
    try:
        for _ in range(PAIRS):
            eventually(lambda: sleeps(state)[0] == sleeps(state)[1])  # not asleep
            idle += latencies(orders, md, BLOCK)
            flag.touch()
            begun = sleeps(state)[0]
            eventually(lambda: sleeps(state)[0] > begun)  # asleep in a callback
            slow += latencies(orders, md, BLOCK)
            flag.unlink()
    finally:
        flag.unlink(missing_ok=True)
        stop(daemon, sid)
    ratio = statistics.median(slow) / statistics.median(idle)
    figures = (f"PlaceOrder p50 {statistics.median(idle) * 1e3:.2f} ms without, "
               f"{statistics.median(slow) * 1e3:.2f} ms with the sleeping strategy ({len(slow)} orders): {ratio:.2f}x")
    print(f"\n{figures}")
    # A strategy that held up the engine made every order wait for its half-second callbacks (a
    # ratio in the hundreds); other work on the machine moves the ratio by a few tenths.
    assert ratio < 2, figures


def test_a_lagging_strategy_is_reported_conflated_and_gets_all_its_order_events(daemon: DaemonProcess,
                                                                                tmp_path: Path) -> None:
    code = tmp_path / "laggard.py"
    code.write_text(LAGGARD.format(orders=ORDERS))
    sid = start(daemon, f"{code}:Laggard", "laggard")
    md = daemon.metadata()
    try:
        alerts = al_grpc.AlertServiceStub(daemon.channel())

        def firing() -> bool:
            listed = alerts.ListAlerts(al.ListAlertsRequest(), metadata=md, timeout=5).alerts
            return any(a.alert.rule == "strategy_lagging" and dict(a.alert.labels).get("strategy") == sid
                       and a.alert.state == ws_pb2.Alert.STATE_FIRING for a in listed)

        eventually(firing, timeout=30, interval=0.5)
        assert metric(daemon, "tradsys_strategy_lag_events", strategy=sid) > 0
        assert metric(daemon, "tradsys_strategy_lag_seconds", strategy=sid) > 2
        for kind in ("book", "bar", "trade"):
            eventually(lambda: metric(daemon, "tradsys_strategy_conflated_events_total", kind=kind, strategy=sid) > 0,
                       timeout=60, interval=0.5)

        def seen() -> dict[str, list[str]]:
            """Each order's statuses, in the order the strategy saw them."""
            statuses: dict[str, list[str]] = {}
            for line in daemon.log.read_text().splitlines():
                found = re.search(rf"strategy\.log seen (st{sid}-\S+) (\w+)", line)
                if found:
                    statuses.setdefault(found.group(1), []).append(found.group(2))
            return statuses

        eventually(lambda: len(seen()) == ORDERS and all(s[-1] == "cancelled" for s in seen().values()),
                   timeout=30, interval=0.5)
        assert all(s == ["new", "cancelled"] for s in seen().values()), seen()
        listed = orders_pb2_grpc.OrderServiceStub(daemon.channel()).ListOrders(
            orders_pb2.ListOrdersRequest(account="laggard"), metadata=md, timeout=5).orders
        assert {o.order_id for o in listed} == set(seen())
        status = spb_grpc.StrategyServiceStub(daemon.channel()).GetStrategyStatus(
            spb.GetStrategyStatusRequest(id=sid), metadata=md, timeout=5).status
        assert status.state == spb.StrategyStatus.STATE_RUNNING
        assert any(json.loads(line).get("event", "").startswith("strategy.slow_callback") for line in
                   daemon.log.read_text().splitlines() if line.startswith("{"))
    finally:
        stop(daemon, sid)
