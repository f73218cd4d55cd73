"""The built-in market maker in a real daemon, on a simulated market made fast with `[market]
taker_rate`: through 20,000 public trades it keeps a bid and an ask on every side its position
limit allows, and the venue never refuses the same request on the same order twice.

The evidence is what the daemon publishes: the order events stream (quotes over time), ListOrders
and GetPositions (the state at the end) and its log (every refusal, with its request). Time is the
engine's (the events' timestamps), so a slow machine stretches the run, not the verdict.
"""

import json
import re
import signal
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest

from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.proto import common_pb2, orders_pb2, orders_pb2_grpc
from tradsys.proto import strategy_pb2 as spb
from tradsys.proto import strategy_pb2_grpc as spb_grpc

SECOND = 1_000_000_000
TAKER_RATE = 450
"""Noise taker orders per second per symbol (the daemon's default is 4)."""
TRADES = 20_000
ACCOUNT = "mm"
SIZES = {"BTC-USD": Decimal("0.1"), "ETH-USD": Decimal("2"), "SOL-USD": Decimal("40")}
"""Quote size per symbol: a few times the median taker's, so most fills are partial."""
LIMIT = 5
"""max_position is this many quotes."""
WARM_UP = 2 * SECOND
GRACE = SECOND
"""A side the position allows may be without a quote for less than this: a filled quote is
replaced at the next engine tick, and a side whose new quote was refused twice waits for the next
refresh (0.5 s here)."""
OPEN = [common_pb2.ORDER_STATUS_NEW, common_pb2.ORDER_STATUS_PARTIALLY_FILLED]
SIDES = {common_pb2.SIDE_BUY: "buy", common_pb2.SIDE_SELL: "sell"}
Kind = orders_pb2.OrderEvent


@dataclass
class Run:
    daemon: DaemonProcess
    events: list[orders_pb2.OrderEvent]
    """The market maker's order events from its start to `ended_ns`, every one of them."""
    started_ns: int
    """Engine time of the first quote."""
    ended_ns: int


def allowed(position: Decimal, size: Decimal) -> set[str]:
    """The sides the market maker must quote: those whose fill keeps |position| within its limit."""
    return {side for side, after in (("buy", position + size), ("sell", position - size)) if abs(after) <= LIMIT * size}


def unquoted(events: list[orders_pb2.OrderEvent], symbol: str, start_ns: int,
             end_ns: int) -> tuple[list[tuple[float, str]], int]:
    """Whole engine seconds in [start_ns, end_ns) at which a side the position allowed had been
    without a live order for GRACE or longer, as (seconds since start, side); and how many seconds
    were checked. An order is live from its acceptance to its cancel, expiry or last fill; whether that
    fill filled it is read from the order's last event (an event carries the order as published,
    which may be later than the event itself)."""
    mine = [e for e in events if e.order.symbol == symbol]
    last_status = {e.order.order_id: e.order.status for e in mine}
    last_fill = {e.order.order_id: i for i, e in enumerate(mine) if e.kind == Kind.KIND_FILLED}
    changes: list[tuple[int, str, str, str, Decimal]] = []  # ts, "open"/"close"/"fill", side, order id, signed qty
    for i, e in enumerate(mine):
        side, oid = SIDES[e.order.side], e.order.order_id
        if e.kind == Kind.KIND_ACCEPTED:
            changes.append((e.ts_ns, "open", side, oid, Decimal(0)))
        elif e.kind in (Kind.KIND_CANCELLED, Kind.KIND_EXPIRED):
            changes.append((e.ts_ns, "close", side, oid, Decimal(0)))
        elif e.kind == Kind.KIND_FILLED:
            qty = Decimal(e.fill.qty)
            changes.append((e.ts_ns, "fill", side, oid, qty if side == "buy" else -qty))
            if i == last_fill[oid] and last_status[oid] == common_pb2.ORDER_STATUS_FILLED:
                changes.append((e.ts_ns, "close", side, oid, Decimal(0)))
    changes.sort(key=lambda c: c[0])
    size = SIZES[symbol]
    live: dict[str, set[str]] = {"buy": set(), "sell": set()}
    position = Decimal(0)
    since: dict[str, int | None] = {"buy": None, "sell": None}
    bad: list[tuple[float, str]] = []
    checked = 0
    sample = start_ns
    i = 0
    while sample < end_ns:
        while i < len(changes) and changes[i][0] <= sample:
            ts = changes[i][0]
            while i < len(changes) and changes[i][0] == ts:
                _, what, side, oid, qty = changes[i]
                if what == "open":
                    live[side].add(oid)
                elif what == "close":
                    live[side].discard(oid)
                position += qty
                i += 1
            sides = allowed(position, size)
            for side in live:
                if side in sides and not live[side]:
                    since[side] = ts if since[side] is None else since[side]
                else:
                    since[side] = None
        for side, began in since.items():
            if began is not None and sample - began >= GRACE:
                bad.append(((sample - start_ns) / SECOND, side))
        checked += 1
        sample += SECOND
    return bad, checked


def mark(daemon: DaemonProcess, events: list[orders_pb2.OrderEvent]) -> int:
    """The engine time now, as the order events stream shows it: a reduce-only order larger than any
    position is refused, and its refusal is published after every event before it."""
    orders = orders_pb2_grpc.OrderServiceStub(daemon.channel())
    seen = len(events)

    def published() -> int | None:
        try:
            orders.PlaceOrder(orders_pb2.PlaceOrderRequest(
                account=ACCOUNT, symbol="BTC-USD", side=common_pb2.SIDE_SELL, type=common_pb2.ORDER_TYPE_MARKET,
                qty="1000", reduce_only=True), metadata=daemon.metadata(), timeout=5)
        except grpc.RpcError:
            pass
        return next((e.ts_ns for e in events[seen:] if e.reason == "reduce_only"), None)

    ts: int = eventually(published, timeout=20, interval=0.5)
    return ts


def fills_total(daemon: DaemonProcess) -> int:
    """Public trades so far, every symbol: the daemon's Prometheus counter."""
    with urllib.request.urlopen(f"http://{daemon.http}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return int(sum(float(n) for n in re.findall(r'^tradsys_fills_total\{symbol="[^"]+"\} (\S+)$', text, re.M)))


def refusals(daemon: DaemonProcess) -> Counter[tuple[str, str, str]]:
    """(order id, request, reason) of every refusal the daemon logged for the market maker's account."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for line in daemon.log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "order.rejected" and entry.get("account") == ACCOUNT:
            seen[(entry["id"], entry["op"], entry["reason"])] += 1
    return seen


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    home = tmp_path_factory.mktemp("home")
    (home / "config.toml").write_text(f"[market]\ntaker_rate = {TAKER_RATE}\n")
    daemon = start_daemon(home, "--seed", "3", "--durability", "process", "--log-format", "json")
    md = daemon.metadata()
    orders = orders_pb2_grpc.OrderServiceStub(daemon.channel())
    stream = orders.StreamOrderEvents(orders_pb2.StreamOrderEventsRequest(account=ACCOUNT), metadata=md)
    events: list[orders_pb2.OrderEvent] = []

    def read() -> None:
        try:
            for event in stream:
                events.append(event)
        except grpc.RpcError:
            pass  # cancelled at the end

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        mark(daemon, events)  # the stream is subscribed
        begin = len(events)
        strategies = spb_grpc.StrategyServiceStub(daemon.channel())
        for symbol, size in SIZES.items():
            params = {"spread_bps": "2", "quantity": str(size), "max_position": str(LIMIT * size),
                      "refresh_seconds": "0.5s"}
            strategies.StartStrategy(spb.StartStrategyRequest(kind="market_making", account=ACCOUNT, symbols=[symbol],
                                                              params=params), metadata=md, timeout=10)
        first = fills_total(daemon)
        eventually(lambda: fills_total(daemon) - first >= TRADES, timeout=240, interval=0.5)
        running = strategies.ListRunning(spb.ListRunningRequest(), metadata=md, timeout=5).strategies
        assert [s.state for s in running] == [spb.StrategyStatus.STATE_RUNNING] * len(SIZES)
        ended_ns = mark(daemon, events)
        quotes = [e for e in events[begin:] if e.ts_ns < ended_ns]
        yield Run(daemon, quotes, min(e.ts_ns for e in quotes if e.kind == Kind.KIND_ACCEPTED), ended_ns)
    finally:
        stream.cancel()
        reader.join(10)
        if daemon.proc.poll() is None:
            daemon.kill(signal.SIGTERM)


@pytest.mark.parametrize("symbol", list(SIZES))
def test_market_maker_quotes_every_side_its_position_allows(run: Run, symbol: str) -> None:
    bad, checked = unquoted(run.events, symbol, run.started_ns + WARM_UP, run.ended_ns)
    assert not bad, f"{len(bad)} of {checked} seconds with an allowed side unquoted for {GRACE / SECOND:g} s: {bad[:10]}"
    assert checked >= 5
    fills = Counter(e.order.order_id for e in run.events if e.order.symbol == symbol and e.kind == Kind.KIND_FILLED)
    assert sum(1 for n in fills.values() if n > 1) >= 20, "too few partial fills to exercise re-quoting"


def test_no_request_is_refused_twice_for_the_same_reason_on_the_same_order(run: Run) -> None:
    seen = refusals(run.daemon)
    assert {reason for _, _, reason in seen} >= {"reduce_only"}, "the fixture's own refusals are not in the log"
    repeated = {key: n for key, n in seen.items() if n > 1}
    assert not repeated, f"refused again and again: {sorted(repeated.items(), key=lambda kv: -kv[1])[:10]}"


def test_open_orders_show_the_quotes_the_position_allows(run: Run) -> None:
    md = run.daemon.metadata()
    orders = orders_pb2_grpc.OrderServiceStub(run.daemon.channel())

    def quoting() -> bool:
        positions = orders.GetPositions(orders_pb2.GetPositionsRequest(account=ACCOUNT), metadata=md, timeout=5)
        held = {p.symbol: Decimal(p.qty) for p in positions.positions}
        listed = orders.ListOrders(orders_pb2.ListOrdersRequest(account=ACCOUNT, statuses=OPEN), metadata=md, timeout=5)
        open_sides = {(o.symbol, SIDES[o.side]) for o in listed.orders}
        missing = [(s, side) for s, size in SIZES.items() for side in allowed(held.get(s, Decimal(0)), size)
                   if (s, side) not in open_sides]
        assert not missing, f"no open quote on {missing}; positions {held}"
        return True

    eventually(quoting, timeout=10)
