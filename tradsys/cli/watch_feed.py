"""The live state behind `tradsys watch`: one symbol's book, tape, bars, own orders, position, risk and alerts.

Each source runs on its own thread and reconnects by itself: streams (StreamBook snapshot +
deltas checked by seq, StreamTrades, StreamOrderEvents, StreamAlerts) for what changes often, polls
once a second for what is cheap to ask (positions marked to market, bars, risk state). The view
reads a consistent copy under the lock.
"""

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import grpc

from tradsys.cli.alerts import alert_doc
from tradsys.cli.client import Client
from tradsys.cli.output import to_dict
from tradsys.proto import alerts_pb2 as alerts_pb
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import risk_pb2 as risk_pb

OPEN = {"new", "partially_filled"}
POLL_SECONDS = 1.0
RETRY_SECONDS = (0.25, 0.5, 1.0, 2.0)
ALERTS_KEPT = 50
"""Alerts held for the view; past it the oldest resolved one goes first, so a long-firing alert stays."""
ALERT_STATES = ("pending", "firing", "resolved")


class SeqGap(Exception):
    """A book delta did not continue the sequence: resubscribe for a fresh snapshot."""


@dataclass
class State:
    symbol: str
    account: str | None
    interval: str
    bids: dict[Decimal, tuple[str, int]] = field(default_factory=dict)
    asks: dict[Decimal, tuple[str, int]] = field(default_factory=dict)
    seq: int = 0
    trades: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=300))
    bars: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Alert id -> its latest transition (`alerts.alert_doc`), at most ALERTS_KEPT."""
    position: dict[str, Any] | None = None
    kill: dict[str, Any] | None = None
    symbol_risk: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    """Source name -> why it is disconnected; empty when everything is live."""

    def last_price(self) -> str | None:
        if self.trades:
            return self.trades[-1]["price"]
        if self.bars:
            return self.bars[-1]["close"]
        return None

    def newest_alerts(self) -> list[dict[str, Any]]:
        """Alerts by their latest transition, newest first."""
        return sorted(self.alerts.values(), key=lambda a: (_changed_ns(a), a["id"]), reverse=True)


def apply_book(s: State, event: md.BookEvent) -> None:
    """Apply one StreamBook message: a snapshot replaces the book; an update replaces its levels by
    price (qty 0 removes one) if it is the next seq, is ignored if already applied, and raises
    SeqGap if updates were lost."""
    if event.HasField("snapshot"):
        snap = event.snapshot
        s.bids = {Decimal(x.price): (x.qty, x.order_count) for x in snap.bids}
        s.asks = {Decimal(x.price): (x.qty, x.order_count) for x in snap.asks}
        s.seq = snap.seq
        return
    update = event.update
    if update.seq <= s.seq:
        return
    if update.seq != s.seq + 1:
        raise SeqGap(f"book seq gap ({s.seq} -> {update.seq}); resubscribing")
    for side, levels in ((s.bids, update.bids), (s.asks, update.asks)):
        for x in levels:
            price = Decimal(x.price)
            if Decimal(x.qty) == 0:
                side.pop(price, None)
            else:
                side[price] = (x.qty, x.order_count)
    s.seq = update.seq


def note_alert(alerts: dict[str, dict[str, Any]], doc: dict[str, Any]) -> None:
    """Keep `doc` as its alert's state unless an equal or later transition of it is held already
    (a stream repeats the active alerts when it opens), then drop the oldest past ALERTS_KEPT."""
    held = alerts.get(doc["id"])
    if held is not None and _transition(held) >= _transition(doc):
        return
    alerts[doc["id"]] = doc
    while len(alerts) > ALERTS_KEPT:
        oldest = min(alerts.values(), key=lambda a: (a["state"] != "resolved", _changed_ns(a), a["id"]))
        del alerts[oldest["id"]]


def _transition(alert: dict[str, Any]) -> tuple[int, int]:
    """Orders one alert's transitions: a new episode starts later; within one, pending < firing < resolved."""
    state = alert["state"]
    return alert["started_ns"], ALERT_STATES.index(state) if state in ALERT_STATES else -1


def _changed_ns(alert: dict[str, Any]) -> int:
    return alert["resolved_ns"] if alert["state"] == "resolved" else alert["started_ns"]


class Feed:
    """Keeps a `State` current for one symbol until `stop()`."""

    def __init__(self, client: Client, symbol: str, account: str | None, interval: str = "1s") -> None:
        self.client = client
        self.state = State(symbol, account, interval)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._calls: set[Any] = set()
        self._threads = [
            threading.Thread(target=self._forever, args=(name, loop), name=f"watch-{name}", daemon=True)
            for name, loop in (("book", self._book), ("trades", self._trades), ("orders", self._orders),
                               ("alerts", self._alerts), ("poll", self._poll))
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        with self.lock:
            calls = list(self._calls)
        for call in calls:
            call.cancel()

    def snapshot(self) -> State:
        """A copy the renderer can read while the threads go on."""
        with self.lock:
            s = self.state
            return replace(s, bids=dict(s.bids), asks=dict(s.asks), trades=deque(s.trades), bars=list(s.bars),
                           orders=dict(s.orders), alerts=dict(s.alerts), errors=dict(s.errors))

    # -- plumbing ---------------------------------------------------------------------------------

    def _forever(self, name: str, loop: Callable[[], None]) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                loop()
                failures = 0
            except SeqGap as exc:
                self._error(name, str(exc))
                continue
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                self._error(name, self.client.error(exc).message)
            except Exception as exc:  # a bad message must not kill the view; show it and retry
                self._error(name, f"{type(exc).__name__}: {exc}")
            failures += 1
            self._stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    def _error(self, name: str, message: str) -> None:
        with self.lock:
            self.state.errors[name] = message

    def _ok(self, name: str) -> None:
        with self.lock:
            self.state.errors.pop(name, None)

    def _stream(self, method: Any, request: Any) -> Any:
        call = self.client.stream(method, request)
        with self.lock:
            self._calls.add(call)
        if self._stop.is_set():
            call.cancel()
        return call

    def _done(self, call: Any) -> None:
        with self.lock:
            self._calls.discard(call)

    def _unary(self, method: Any, request: Any) -> Any:
        return method(request, metadata=self.client.metadata, timeout=5)

    # -- sources ----------------------------------------------------------------------------------

    def _book(self) -> None:
        call = self._stream(self.client.market.StreamBook, md.StreamBookRequest(symbol=self.state.symbol))
        try:
            for event in call:
                with self.lock:
                    apply_book(self.state, event)
                self._ok("book")
        finally:
            self._done(call)
            call.cancel()

    def _trades(self) -> None:
        call = self._stream(self.client.market.StreamTrades, md.StreamTradesRequest(symbol=self.state.symbol))
        try:
            recent = self._unary(self.client.market.GetTrades, md.GetTradesRequest(symbol=self.state.symbol, limit=300))
            with self.lock:
                seen = {t["trade_id"] for t in self.state.trades}
                for trade in recent.trades:
                    if trade.trade_id not in seen:
                        self.state.trades.append(to_dict(trade))
            self._ok("trades")
            for trade in call:
                with self.lock:
                    self.state.trades.append(to_dict(trade))
        finally:
            self._done(call)
            call.cancel()

    def _orders(self) -> None:
        s = self.state
        request = pb.StreamOrderEventsRequest(account=s.account or "", symbol=s.symbol)
        call = self._stream(self.client.orders.StreamOrderEvents, request)
        try:
            listed = self._unary(self.client.orders.ListOrders, pb.ListOrdersRequest(
                account=s.account or "", symbol=s.symbol, page_size=200,
                statuses=[common.ORDER_STATUS_NEW, common.ORDER_STATUS_PARTIALLY_FILLED]))
            with self.lock:
                s.orders = {o.order_id: to_dict(o) for o in listed.orders}
            self._ok("orders")
            for event in call:
                doc = to_dict(event)
                order = doc["order"] or {}
                with self.lock:
                    if order.get("status") in OPEN:
                        s.orders[order["order_id"]] = order
                    else:
                        s.orders.pop(order.get("order_id", ""), None)
                if doc["kind"] == "filled":
                    self._poke.set()  # refresh the position now, not at the next poll
        finally:
            self._done(call)
            call.cancel()

    def _alerts(self) -> None:
        call = self._stream(self.client.alerts.StreamAlerts, alerts_pb.StreamAlertsRequest())
        try:
            # what changed while disconnected (an alert resolved meanwhile) is in the history, not the stream
            recent = self._unary(self.client.alerts.ListAlerts, alerts_pb.ListAlertsRequest(limit=ALERTS_KEPT))
            with self.lock:
                for update in reversed(recent.alerts):
                    note_alert(self.state.alerts, alert_doc(update))
            self._ok("alerts")
            for update in call:
                with self.lock:
                    note_alert(self.state.alerts, alert_doc(update))
        finally:
            self._done(call)
            call.cancel()

    def _poll(self) -> None:
        s = self.state
        while not self._stop.is_set():
            positions = self._unary(self.client.orders.GetPositions, pb.GetPositionsRequest(account=s.account or ""))
            risk = self._unary(self.client.risk.GetRiskState, risk_pb.GetRiskStateRequest())
            bars = self._unary(self.client.market.GetBars, md.GetBarsRequest(symbol=s.symbol, interval=s.interval, limit=300))
            mine = [to_dict(p) for p in positions.positions if p.symbol == s.symbol]
            with self.lock:
                s.position = _merge_positions(mine)
                s.kill = to_dict(risk.kill_switch)
                s.symbol_risk = next((to_dict(x) for x in risk.symbols if x.symbol == s.symbol), None)
                s.bars = [to_dict(b) for b in bars.bars]
            self._ok("poll")
            self._poke.wait(POLL_SECONDS)
            self._poke.clear()


def _merge_positions(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One account's position, or the sum over accounts when watching every account."""
    if not rows:
        return None
    if len(rows) == 1:
        return rows[0]
    total = {k: str(sum(Decimal(r[k] or "0") for r in rows)) for k in ("qty", "realized_pnl", "unrealized_pnl", "fees")}
    return {**rows[0], **total, "account": "*", "avg_price": ""}
