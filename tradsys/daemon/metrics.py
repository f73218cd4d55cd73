"""Prometheus metrics: one registry per daemon, names prefixed `tradsys_`, bounded label sets."""

from collections import Counter as Tally
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import PlatformCollector, ProcessCollector

from tradsys.daemon.alerts import LatencyWindow
from tradsys.engine import OrderAccepted, OrderCancelled, OrderExpired, OrderFilled, OrderRejected, Venue

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self._timings: Callable[[], tuple[float, float]] = lambda: (0.0, 0.0)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.ack_window = LatencyWindow()
        """The last minute of acknowledgement latencies, for the p99 alert."""
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.orders = Counter("tradsys_orders", "Orders that reached the engine, by outcome.",
                              ["outcome", "symbol", "side", "type"], registry=r)
        self.rejections = Counter("tradsys_risk_rejections", "Orders and commands refused, by reason.",
                                  ["reason"], registry=r)
        self.fills = Counter("tradsys_fills", "Matches (one per maker/taker pair).", ["symbol"], registry=r)
        self.volume = Counter("tradsys_traded_volume", "Traded quantity in base units.", ["symbol"], registry=r)
        self.notional = Counter("tradsys_traded_notional", "Traded notional in quote units.", ["symbol"], registry=r)
        self.commands = Counter("tradsys_journal_commands", "Commands made durable in the journal.", registry=r)
        self.commit_seconds = Histogram("tradsys_journal_commit_seconds", "Time to make one batch durable.",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.engine_seconds = Histogram("tradsys_engine_batch_seconds",
                                        "Engine side of order-to-ack: applying one batch and making it durable.",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.book_depth = Gauge("tradsys_book_depth", "Quantity on the top 10 levels, in base units.",
                                ["symbol", "side"], registry=r)
        self.strategy_pnl = Gauge("tradsys_strategy_pnl", "A running strategy's PnL in the quote currency.",
                                  ["strategy"], registry=r)
        self.strategy_position = Gauge("tradsys_strategy_position", "A running strategy's position in base units.",
                                       ["strategy", "symbol"], registry=r)
        self.batch_size = Histogram("tradsys_journal_batch_size", "Commands per group commit.",
                                    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000), registry=r)
        self.ack_seconds = Histogram("tradsys_order_ack_seconds", "gRPC order entry: request in to durable ack out.",
                                     ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.grpc_requests = Counter("tradsys_grpc_requests", "gRPC calls by method and status code.",
                                     ["method", "code"], registry=r)
        self.rest_requests = Counter("tradsys_rest_requests", "REST calls by method and HTTP status.",
                                     ["method", "status"], registry=r)
        self.http_refused = Counter("tradsys_http_refused_connections",
                                    "Connections to the HTTP port refused past [http] max_connections.", registry=r)
        self.auth_refusals = Counter("tradsys_auth_refusals", "Refused credentials or permissions.", ["kind", "detail"],
                                     registry=r)
        self.best_bid = Gauge("tradsys_book_best_bid", "Best bid price.", ["symbol"], registry=r)
        self.best_ask = Gauge("tradsys_book_best_ask", "Best ask price.", ["symbol"], registry=r)
        self.spread = Gauge("tradsys_book_spread", "Best ask minus best bid.", ["symbol"], registry=r)
        self.halted = Gauge("tradsys_symbol_halted", "1 while the symbol is halted or its breaker is tripped.",
                            ["symbol"], registry=r)
        self.breaker_open = Gauge("tradsys_circuit_breaker_open", "1 while the symbol's circuit breaker is tripped.",
                                  ["symbol"], registry=r)
        self.last_trade = Gauge("tradsys_last_trade_timestamp_seconds", "Engine time of the symbol's last trade.",
                                ["symbol"], registry=r)
        self.strategy_drawdown = Gauge("tradsys_strategy_drawdown_ratio",
                                       "A running strategy's equity below its peak, as a ratio.", ["strategy"],
                                       registry=r)
        self.strategy_lag_events = Gauge("tradsys_strategy_lag_events",
                                         "Events waiting for a running strategy's worker.", ["strategy"], registry=r)
        self.strategy_lag_seconds = Gauge("tradsys_strategy_lag_seconds",
                                          "Seconds since a running strategy last caught up with its events.",
                                          ["strategy"], registry=r)
        self.strategy_conflated = Counter("tradsys_strategy_conflated_events",
                                          "Market events a lagging strategy skipped (trade, bar, book).",
                                          ["strategy", "kind"], registry=r)
        self._conflated_seen: dict[tuple[str, str], float] = {}
        self.kill_switch = Gauge("tradsys_kill_switch", "1 while the kill switch is on.", registry=r)
        self.open_orders = Gauge("tradsys_open_orders", "Open orders in the engine.", registry=r)
        self.last_event = Gauge("tradsys_last_event_timestamp_seconds", "Time of the last committed batch.", registry=r)
        self.ws_connections = Gauge("tradsys_ws_connections", "Open WebSocket sessions, by protocol (json, proto).",
                                    ["protocol"], registry=r)
        self.ws_slow_clients = Counter("tradsys_ws_slow_clients", "Slow WebSocket consumers: book views conflated to a "
                                       "fresh snapshot, or connections closed for lagging.", ["action"], registry=r)
        self.ws_refusals = Counter("tradsys_ws_refusals", "WebSocket frames or connections refused, by kind (malformed, "
                                   "unsupported, rate_limited, flood, unauthenticated, connection_limit).", ["kind"], registry=r)
        self.peerjs_peers = Gauge("tradsys_peerjs_peers", "Peers connected to the PeerJS signaling server.", registry=r)
        self.peerjs_dropped = Counter("tradsys_peerjs_dropped", "PeerJS messages dropped at a bound, by the [peerjs] "
                                      "setting hit (queue_limit, queue_bytes, peer_bytes, waiting_limit, total_bytes).",
                                      ["reason"], registry=r)
        self.peerjs_held_bytes = Gauge("tradsys_peerjs_held_bytes", "Bytes of PeerJS messages held for peers "
                                       "(charged as in [peerjs] total_bytes).", registry=r)

    def on_commit(self, batch: list, venue: Venue) -> None:
        """Engine-thread listener: counts from events, gauges from the venue. Counts are summed
        per batch first, and children are looked up in `_child` rather than through `labels()`:
        this runs after every publication of commits."""
        orders: Tally[tuple[str, str, str, str]] = Tally()
        rejections: Tally[str] = Tally()
        traded: dict[str, list[int]] = {}
        touched: set[str] = set()
        for cmd, events in batch:
            for event in events:
                kind = type(event)
                if kind is OrderFilled:
                    symbol = event.symbol
                    totals = traded.setdefault(symbol, [0, 0, 0])
                    totals[0] += 1
                    totals[1] += event.qty
                    totals[2] += event.price * event.qty
                elif kind is OrderAccepted:
                    order = event.order
                    orders["accepted", order.symbol, order.side._value_, order.type._value_] += 1
                    touched.add(order.symbol)
                elif kind is OrderRejected:
                    rejections[event.reason] += 1
                    if event.op == "new" and cmd.get("symbol") in venue.instruments:
                        orders["rejected", cmd["symbol"], cmd.get("side", ""), cmd.get("type", "limit")] += 1
                elif kind is OrderCancelled or kind is OrderExpired:
                    touched.add(event.order.symbol)
        child = self._child
        for labels, n in orders.items():
            child(self.orders, labels).inc(n)
        for reason, n in rejections.items():
            child(self.rejections, (reason,)).inc(n)
        now = venue.now / 1e9
        for symbol, (fills, lots, notional) in traded.items():
            inst = venue.instruments[symbol]
            key = (symbol,)
            child(self.fills, key).inc(fills)
            child(self.last_trade, key).set(now)
            child(self.volume, key).inc(float(inst.qty(lots)))
            child(self.notional, key).inc(notional * inst.cash_mult / 1e8)
            touched.add(symbol)
        self.commands.inc(len(batch))
        self.batch_size.observe(len(batch))
        apply_s, commit_s = self._timings()
        self.commit_seconds.observe(commit_s)
        self.engine_seconds.observe(apply_s + commit_s)
        for symbol in touched:
            book, inst = venue.books[symbol], venue.instruments[symbol]
            key = (symbol,)
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None:
                child(self.best_bid, key).set(float(inst.price(bid)))
            if ask is not None:
                child(self.best_ask, key).set(float(inst.price(ask)))
            if bid is not None and ask is not None:
                child(self.spread, key).set(float(inst.price(ask - bid)))
            bids, asks = book.depth(10)
            child(self.book_depth, (symbol, "bid")).set(float(inst.qty(sum(q for _, q, _ in bids))))
            child(self.book_depth, (symbol, "ask")).set(float(inst.qty(sum(q for _, q, _ in asks))))
        for symbol in venue.instruments:
            key = (symbol,)
            child(self.halted, key).set(1 if venue.halt_reason(symbol) else 0)
            child(self.breaker_open, key).set(1 if venue.breakers[symbol].is_open(venue.now) else 0)
        self.kill_switch.set(1 if venue.kill_switch else 0)
        self.open_orders.set(len(venue.orders))
        self.last_event.set(now)

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        """A labelled metric's child: `labels()` validates and locks on every call, this is a dict lookup."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def strategy_lag(self, signals: Any) -> None:
        """The strategies' lag from the alert signals (`StrategyHost.lag_signals`); the conflated
        counts there are totals per instance, counted here by their increase."""
        for labels, value in signals.get("strategy_lag_events", {}).items():
            self.strategy_lag_events.labels(dict(labels)["strategy"]).set(value)
        for labels, value in signals.get("strategy_lag_seconds", {}).items():
            self.strategy_lag_seconds.labels(dict(labels)["strategy"]).set(value)
        for labels, total in signals.get("strategy_conflated_events", {}).items():
            key = (dict(labels)["strategy"], dict(labels)["kind"])
            if total > self._conflated_seen.get(key, 0.0):
                self.strategy_conflated.labels(*key).inc(total - self._conflated_seen.get(key, 0.0))
                self._conflated_seen[key] = total

    def bind_engine(self, pending: Callable[[], int], last_cycle_ns: Callable[[], int],
                    timings: Callable[[], tuple[float, float]]) -> None:
        """Gauges read at scrape time (they must move even when the engine thread is stuck), and
        the batch timings `on_commit` records."""
        self._timings = timings
        Gauge("tradsys_engine_queue_depth", "Jobs waiting for the engine thread.",
              registry=self.registry).set_function(pending)
        Gauge("tradsys_engine_last_cycle_timestamp_seconds", "When the engine thread last finished a cycle.",
              registry=self.registry).set_function(lambda: last_cycle_ns() / 1e9)

    def bind_http(self, open_connections: Callable[[], int]) -> None:
        Gauge("tradsys_http_connections", "Connections open on the HTTP port (plain HTTP, REST and WebSocket).",
              registry=self.registry).set_function(open_connections)

    def rest_call(self, method: str, status: int) -> None:
        self._child(self.rest_requests, (method, str(status))).inc()

    def observe_ack(self, method: str, seconds: float) -> None:
        self.ack_seconds.labels(method).observe(seconds)
        self.ack_window.add(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
