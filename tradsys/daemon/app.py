"""The daemon: wires the engine thread, the store, the feeds and the servers together.

Start-up order matters: recover the venue from the store before anything can submit, bind both
ports before announcing health, and on stop refuse new work first, then drain the engine (its
last batch is committed and snapshotted) before closing the store.
"""

import gc
import ipaddress
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradsys.daemon.alerts import Alerter, AlertRules, RejectWindow, Webhook, load_rules, log_alert
from tradsys.daemon.auth import ensure_secrets, issue_token
from tradsys.daemon.config import Config, ConfigError, section
from tradsys.daemon.core import Core
from tradsys.daemon.feeds import Feeds
from tradsys.daemon.http import HttpServer
from tradsys.daemon.hub import Hub
from tradsys.daemon.live_markets import RULE as live_rule
from tradsys.daemon.live_markets import LiveMarkets
from tradsys.daemon.logs import log_event
from tradsys.daemon.market import SimulatedMarket
from tradsys.daemon.market_config import SimConfig
from tradsys.daemon.market_prices import DataFeed
from tradsys.daemon.metrics import Metrics
from tradsys.daemon.p2p_config import P2pConfig
from tradsys.daemon.peerjs import PeerServer
from tradsys.daemon.rest import Gateway
from tradsys.daemon.rest import mount as mount_rest
from tradsys.daemon.rpc.alerts import AlertService
from tradsys.daemon.rpc.gate import Gate
from tradsys.daemon.rpc.marketdata import MarketDataService
from tradsys.daemon.rpc.orders import OrderService
from tradsys.daemon.rpc.risk import RiskService
from tradsys.daemon.rpc.server import GrpcServer
from tradsys.daemon.rpc.streaming import Fanout
from tradsys.daemon.rpc.strategy import StrategyService
from tradsys.daemon.store import Store
from tradsys.daemon.strategies import StrategyHost
from tradsys.daemon.ws import WsServer
from tradsys.daemon.ws_limits import WsLimits
from tradsys.data import load_market_data
from tradsys.engine import (
    DEFAULT_INSTRUMENTS,
    Event,
    OrderFilled,
    OrderRejected,
    SelfTradePrevention,
    Venue,
    VenueConfig,
)

log = logging.getLogger("tradsys.daemon")


def make_venue(config: Config, live: LiveMarkets | None = None) -> Venue:
    """The default instruments, and the live feeds' with the same starting cash in their quote currencies."""
    balances = {config.currency: Decimal(config.initial_balance)}
    if live is not None:
        balances |= {ccy: Decimal(config.initial_balance) for ccy in live.quotes if ccy not in balances}
    return Venue(
        DEFAULT_INSTRUMENTS + tuple(live.instruments.values() if live is not None else ()),
        VenueConfig(
            maker_fee_bps=Decimal(config.maker_fee_bps),
            taker_fee_bps=Decimal(config.taker_fee_bps),
            initial_balances=balances,
            stp=SelfTradePrevention(config.stp),
        ),
    )


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = time.time()
        self.state = "starting"
        self.hub = Hub()
        self.metrics = Metrics()
        self._stopped = threading.Event()
        self.core: Core | None = None
        self.market: SimulatedMarket | None = None
        self.live: LiveMarkets | None = None
        self.webhook: Webhook | None = None
        self.p2p: Any = None
        """The daemon's own peer (tradsys.p2p.hub.SignalHub) when `[p2p] enabled`."""
        self.signal_sources: list[Callable[[int], dict[str, dict[tuple, float]]]] = []
        """Extra alert signals (e.g. strategy drawdown) from components that own them."""
        self.started_ns = time.time_ns()
        self.grpc_port = config.grpc_port
        self.http_port = config.http_port

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        # A thread woken by its acknowledgement should get the interpreter soon, not after the
        # default 5 ms slice of whatever thread holds it; and the engine's steady allocation of
        # short-lived objects should not pay for repeated full collections of the long-lived ones.
        sys.setswitchinterval(0.0002)
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.live = live = LiveMarkets.from_config(config)
        self.alerter = self._alerter()
        p2p = self._p2p_config()
        secret, _admin_token = ensure_secrets(config.home)
        self.store = Store(config.db_path, fsync=config.durability == "fsync")
        journal = self.store.journal
        venue, last_seq, replayed = journal.recover(lambda: make_venue(config, live))
        fresh = last_seq == 0
        if fresh:
            journal.snapshot(0, venue)
        log_event(log, logging.INFO, "daemon.recovered", seq=last_seq, replayed=replayed, open_orders=len(venue.orders))
        market = self._market(venue)
        self.market = market
        self.strategies = StrategyHost(self.store.settings, venue.instruments, threaded=True)
        self.strategies.restore()
        self.signal_sources += [self.strategies.drawdown_signals, self.strategies.lag_signals]
        self.core = core = Core(
            venue, journal, next_order_number=journal.next_order_number(), last_seq=last_seq,
            actors=([market] if market is not None else []) + ([live.mirror] if live is not None else [])
            + [self.strategies],
            snapshot_every=config.snapshot_every, max_queued=config.max_queued,
            restore=lambda: journal.recover(lambda: make_venue(config, live))[0],
        )
        self.feeds = Feeds(venue, self.hub)
        rebuilt = self.feeds.restore(venue, self.store.history, time.time_ns())
        self.strategies.recent_bars = self.feeds.closed_bars
        log_event(log, logging.INFO, "daemon.bars_rebuilt", trades=rebuilt)
        self.rejects = RejectWindow()
        self.metrics.bind_engine(core.pending, lambda: core.last_cycle_ns, lambda: core.timings)
        core.listeners += [self.metrics.on_commit, self.feeds.on_commit, self.rejects.on_commit, _log_events]
        core.listeners.append(self.strategies.on_commit)
        core.start()
        if market is not None and fresh:
            core.execute(market.setup_commands())
        if live is not None:
            core.execute(core.query(live.mirror.setup_commands))
            live.mirror.ready = True
            def printed(symbol: str, trade: dict[str, Any], price: int, lots: int) -> None:
                self.feeds.add_trade(venue, symbol, trade, price, lots)
                self.strategies.on_print(venue, symbol, trade["ts"], price, lots, trade["taker_side"])

            live.start(printed)
            self.signal_sources.append(live.signals)
        fanout = Fanout(self.hub)
        gate = Gate(secret, on_refusal=lambda kind, detail: self.metrics.auth_refusals.labels(kind, detail).inc())
        servicers = {
            "orders": OrderService(core, self.store.history, fanout, gate),
            "marketdata": MarketDataService(core, self.feeds, fanout, gate),
            "risk": RiskService(core, gate),
            "strategy": StrategyService(gate, self.strategies),
            "alerts": AlertService(self.store.settings, fanout, gate, lambda: list(self.alerter.rules.active.values())),
        }
        credentials, tls = tls_contexts(config)
        for where in insecure_binds(config):
            log_event(log, logging.WARNING, "daemon.insecure_bind", listen=where,
                      advice="tokens and orders cross the network in clear text: set [tls] cert and key")
        self.http = HttpServer(config.http_host, config.http_port, config.max_message_bytes, ssl=tls,
                               max_connections=config.http_max_connections, idle_seconds=config.http_idle_seconds,
                               on_refused=self.metrics.http_refused.inc)
        self.metrics.bind_http(lambda: self.http.open)
        self.http.routes["/health"] = self._health
        self.http.routes["/metrics"] = self._metrics
        self.ws = WsServer(core, self.feeds, self.hub, self.store.history, secret, self.metrics,
                           section(WsLimits, "ws", config.raw.get("ws", {})))
        self.http.sessions["/ws"] = self.ws.json_session
        self.http.sessions["/ws/v2"] = self.ws.proto_session
        self.peerjs = PeerServer.from_config(config.raw.get("peerjs", {}), secret, self.metrics)
        self.peerjs.mount(self.http)
        self.rest = mount_rest(self.http, Gateway(servicers, config.rest_workers, config.rest_max_inflight,
                                                  self.metrics.rest_call))
        try:
            self.grpc = GrpcServer(config.grpc_host, config.grpc_port, servicers, self.metrics,
                                   config.max_message_bytes, credentials, max_streams=config.max_streams)
            self.grpc_port = self.grpc.port
            self.http.start()
        except BaseException:
            core.stop()
            self.store.close()
            raise
        self.http_port = self.http.port
        self.p2p = self._p2p(p2p, secret)
        self.grpc.start()
        self.alerter.start()
        self.grpc.set_serving(True)
        self.state = "ok"
        log_event(
            log, logging.INFO, "daemon.started", grpc=f"{config.grpc_host}:{self.grpc_port}",
            http=f"{config.http_host}:{self.http_port}", market="simulated" if market else "off", pid=os.getpid(),
        )

    def _p2p_config(self) -> P2pConfig:
        """`[p2p]`, checked before anything starts."""
        raw = self.config.raw.get("p2p") or {}
        if raw.get("senders") == []:
            raise ConfigError("[p2p] senders = [] would ignore every signal; leave it out to take any sender's")
        return section(P2pConfig, "p2p", raw)

    def _p2p(self, spec: P2pConfig, secret: bytes) -> Any:
        """The daemon's own peer, signaling through our /peerjs, for the strategies' signals; None
        unless `[p2p] enabled` (aiortc is imported only then)."""
        if not spec.enabled:
            return None
        from tradsys.p2p import signaling_url, use_addresses
        from tradsys.p2p.hub import SignalHub

        if spec.ice_addresses:
            use_addresses(list(spec.ice_addresses))
        host = self.config.http_host if self.config.http_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        hub = SignalHub(signaling_url(f"{host}:{self.http_port}"), issue_token(secret, "viewer", subject="daemon-p2p"),
                        spec.id, self.strategies.on_signal, spec.secret.encode() or None, spec.senders or None)
        self.strategies.publish = hub.publish
        hub.start()
        return hub

    def _market(self, venue: Venue) -> SimulatedMarket | None:
        config = self.config
        sim = SimConfig(seed=config.sim_seed or 7, taker_rate=config.sim_taker_rate)
        if config.replay_data is not None:
            data = load_market_data(config.replay_data)
            source = DataFeed(data, speed=config.replay_speed, start_ns=time.time_ns())
            return SimulatedMarket(venue.instruments, sim, source)
        if config.simulate:
            return SimulatedMarket(venue.instruments, sim)
        return None

    def _alerter(self) -> Alerter:
        spec = self.config.raw.get("alerts") or {}
        deliver = [log_alert, self._store_alert, lambda alert: self.hub.publish("alerts", alert)]
        if spec.get("webhook"):
            self.webhook = Webhook(str(spec["webhook"]))
            deliver.append(self.webhook.send)
        rules = load_rules(spec) + ([live_rule] if self.live is not None else [])
        return Alerter(AlertRules(rules), self._signals, deliver)

    def _store_alert(self, alert: dict[str, Any]) -> None:
        self.store.settings.upsert_alert(alert["id"], alert["rule"], alert["severity"], alert["state"],
                                         alert["started_ns"], alert["labels"], alert["summary"], alert["resolved_ns"])

    def _signals(self) -> tuple[int, dict[str, dict[tuple, float]]]:
        """What the alert rules look at. Read from this thread without asking the engine, so that
        a stuck engine thread is itself detectable (journal_behind)."""
        now = time.time_ns()
        core = self.core
        venue = core.venue
        second = 1e9
        stale = {}
        for symbol, trades in self.feeds.trades.items():
            if trades:
                stale[(("symbol", symbol),)] = (now - trades[-1]["ts"]) / second
            elif self.market is not None:
                stale[(("symbol", symbol),)] = (now - self.started_ns) / second
        if self.live is not None:  # a feed symbol is as fresh as the exchange's last print
            stale |= {(("symbol", symbol),): age for symbol, age in self.live.mirror.staleness(now).items()}
        signals: dict[str, dict[tuple, float]] = {
            "feed_staleness_seconds": stale,
            "order_reject_ratio": {(): self.rejects.ratio(now)},
            "circuit_breaker_open": {
                (("symbol", s),): float(b.is_open(venue.now)) for s, b in list(venue.breakers.items())
            },
            "kill_switch": {(): float(venue.kill_switch)},
            "order_ack_p99_seconds": {(): self.metrics.ack_window.p99()},
            "journal_lag_seconds": {(): (now - core.last_cycle_ns) / second if core.pending() else 0.0},
        }
        for source in self.signal_sources:
            signals.update(source(now))
        for labels, ratio in signals.get("strategy_drawdown_ratio", {}).items():
            self.metrics.strategy_drawdown.labels(dict(labels)["strategy"]).set(ratio)
        for labels, pnl in signals.get("strategy_pnl", {}).items():
            self.metrics.strategy_pnl.labels(dict(labels)["strategy"]).set(pnl)
        for labels, qty in signals.get("strategy_position", {}).items():
            self.metrics.strategy_position.labels(dict(labels)["strategy"], dict(labels)["symbol"]).set(qty)
        self.metrics.strategy_lag(signals)
        return now, signals

    def wait(self) -> None:
        """Block the main thread until SIGTERM/SIGINT, then stop gracefully. The handlers only note the
        signal: a handler runs on this thread between two of its steps, possibly while it holds the lock
        inside `_stopped.wait`, and setting that Event from there would wait for ever on itself."""
        signalled: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda number, _frame: signalled.append(number))
        while not signalled and not self._stopped.wait(0.1):
            if self.core is not None and self.core.failed is not None:
                log_event(log, logging.ERROR, "daemon.engine_failed", error=str(self.core.failed))
                break
        self.stop()

    def stop(self) -> None:
        if self.state == "stopped":
            return
        self.state = "stopping"
        log_event(log, logging.INFO, "daemon.stopping")
        self.grpc.set_serving(False)
        self.alerter.stop()
        if self.webhook is not None:
            self.webhook.close()
        self.grpc.stop(grace=2)
        if self.live is not None:
            self.live.stop()
        self.hub.close_all("the daemon is shutting down")
        if self.p2p is not None:
            self.p2p.stop()
        if self.core is not None:
            self.core.stop()
        self.http.stop()
        self.rest.close()
        self.store.close()
        self.state = "stopped"
        self._stopped.set()
        log_event(log, logging.INFO, "daemon.stopped")

    # -- HTTP -----------------------------------------------------------------------------

    def health_report(self) -> dict[str, Any]:
        core = self.core
        engine = "running" if core is not None and core.running else ("failed" if core and core.failed else "starting")
        venue = core.venue if core is not None else None
        status = self.state
        if status == "ok" and (engine != "running" or (venue is not None and venue.kill_switch)):
            status = "halted"
        fault = core.storage.fault if core is not None else None
        if status == "ok" and fault is not None:
            status = "degraded"
        return {
            "status": status,
            "uptime_seconds": round(time.time() - self.started, 3),
            "components": {
                "engine": engine,
                "store": "failed" if core is not None and core.failed is not None else (fault or "ok"),
                "grpc": "serving" if self.state == "ok" else self.state,
                "market": "off" if self.market is None else "running",
                **({"feeds": self.live.describe()} if self.live is not None else {}),
                "kill_switch": bool(venue and venue.kill_switch),
                "journal_seq": core.last_seq if core else 0,
                "open_orders": len(venue.orders) if venue is not None else 0,
            },
        }

    def _health(self, _request: Any) -> tuple[int, str, bytes]:
        report = self.health_report()
        return (200 if report["status"] == "ok" else 503), "application/json", json.dumps(report).encode()

    def _metrics(self, _request: Any) -> tuple[int, str, bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST

        return 200, CONTENT_TYPE_LATEST, self.metrics.exposition()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def insecure_binds(config: Config) -> list[str]:
    """Listen addresses reachable from other machines while TLS is off (each deserves a warning)."""
    if config.tls_cert is not None:
        return []
    return [f"{kind} {host}" for kind, host in (("grpc", config.grpc_host), ("http", config.http_host))
            if not _loopback(host)]


def tls_contexts(config: Config) -> tuple[Any, ssl.SSLContext | None]:
    """gRPC server credentials and the HTTP/WebSocket SSL context from `[tls] cert/key`, or (None, None)."""
    if config.tls_cert is None or config.tls_key is None:
        return None, None
    import grpc

    cert, key = config.tls_cert.read_bytes(), config.tls_key.read_bytes()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return grpc.ssl_server_credentials([(key, cert)]), context


SIM_PREFIX = "sim-"


def _log_events(batch: list[tuple[dict[str, Any], list[Event]]], venue: Venue) -> None:
    """Every order event once, with its ids; the simulated market's own flow only at debug level."""
    if not log.isEnabledFor(logging.INFO):
        return
    for _cmd, events in batch:
        for event in events:
            if isinstance(event, OrderFilled):
                inst = venue.instruments[event.symbol]
                sim = event.taker.account.startswith(SIM_PREFIX) and event.maker.account.startswith(SIM_PREFIX)
                log_event(
                    log, logging.DEBUG if sim else logging.INFO, "order.filled", trade=event.trade_id,
                    symbol=event.symbol, taker=event.taker.id, maker=event.maker.id,
                    taker_account=event.taker.account, maker_account=event.maker.account,
                    price=str(inst.price(event.price)), qty=str(inst.qty(event.qty)),
                )
            elif isinstance(event, OrderRejected):
                log_event(
                    log, logging.DEBUG if event.account.startswith(SIM_PREFIX) else logging.INFO, "order.rejected",
                    id=event.order_id, account=event.account, op=event.op, reason=event.reason, message=event.message,
                )
            else:
                order = event.order
                kind = type(event).__name__.removeprefix("Order").lower()
                log_event(
                    log, logging.DEBUG if order.account.startswith(SIM_PREFIX) else logging.INFO, f"order.{kind}",
                    id=order.id, account=order.account, symbol=order.symbol, side=order.side.value,
                    status=order.status.value, reason=getattr(event, "reason", None),
                )
