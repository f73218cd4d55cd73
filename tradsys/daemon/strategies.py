"""Live strategies: the same Strategy classes as the backtester, each instance on a worker thread.

`StrategyHost` is an actor and a listener on the engine thread, where it never runs a strategy's
code: as a listener (`on_commit`) it hands each instance its own order events (their orders copied
as published) and the trades and bars of its symbols; as an actor (`step`) it refreshes the books
the strategies read (`LiveContext.book`: top of book and last price, snapshotted on the engine
thread), queues ticks for timers and on_book, and returns the commands the strategies made since the
last tick, which the core stamps, risk-checks, applies and journals like any client's. The
callbacks run on each instance's `StrategyWorker` (bounded inbox, conflation: see its module), so
a slow strategy lags, visibly (`lag_signals`: metrics and the `strategy_lagging` alert), without
delaying anyone else.

Commands go through the next tick (50 ms by default) rather than `Core.submit`: the engine applies
them in the order the strategy made them, after the cancels of its launch and before anything it
does later, with no future to track and no queue of the core's to overflow.

Each instance trades for its own account (default `strategy-<id>`) under that account's risk
limits. A callback that raises fails its instance only: the traceback is logged, its open orders
are cancelled, the state becomes "failed"; other instances and the daemon go on. An instance more
than `MAX_OWN_EVENTS` of its own order events behind fails the same way (the host cancels its orders).

Instances are kept in the store's `strategies` table (params and symbols in `params`): those
"running" when the daemon stopped are started again when it starts, after cancelling orders that
their earlier run left open.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradsys.daemon.ids import run_tag
from tradsys.daemon.strategy_worker import MARKET_BACKLOG, MAX_OWN_EVENTS, StrategyWorker
from tradsys.engine import BarAggregator, Event, OrderFilled, OrderRejected, Venue, parse_interval
from tradsys.engine.commands import fmt
from tradsys.engine.events import OrderAccepted, OrderAmended, OrderTriggered
from tradsys.engine.instrument import CASH_SCALE
from tradsys.engine.strategy import (
    BUILTINS,
    BarData,
    BookData,
    Context,
    Params,
    Strategy,
    StrategyError,
    StrategyRunner,
    TradeData,
    load_strategy,
    resolve_params,
)
from tradsys.engine.strategy.params import format_value

log = logging.getLogger("tradsys.strategy")

MAX_OUTBOX = 10_000
"""New orders and amends a strategy may have waiting for the engine's next tick; past it they raise."""
STOP_GRACE_NS = 10_000_000_000
"""A stopped instance whose worker is still in a callback this long after has its orders cancelled."""

Batch = list[tuple[dict[str, Any], list[Any]]]


class StrategyRequestError(ValueError):
    """A start request the host refuses: unknown kind or symbol, bad parameters."""


class LiveContext(Context):
    """Runs on the instance's worker: commands wait in `out` for the engine's next tick (`take`),
    books and time are the engine's latest (`host.books`, `host.now`). Only the venue's instruments
    are kept, never the venue: the engine thread owns it."""

    def __init__(self, host: "StrategyHost", venue: Venue, symbols: tuple[str, ...], prefix: str, account: str) -> None:
        super().__init__(venue.instruments, symbols, prefix, account, log)
        self.host = host
        self.out: list[dict[str, Any]] = []
        self._out_lock = threading.Lock()

    @property
    def now(self) -> int:
        return self.host.now

    def take(self) -> list[dict[str, Any]]:
        """The commands made since the last call (engine thread)."""
        with self._out_lock:
            out, self.out = self.out, []
        return out

    def _send(self, cmd: dict[str, Any]) -> None:
        with self._out_lock:
            if len(self.out) >= MAX_OUTBOX and cmd["op"] != "cancel":
                raise StrategyError(f"{MAX_OUTBOX} orders and amends already wait for the engine")
            self.out.append(cmd)

    def _send_new(self, order_id: str, symbol: str, side: str, type: str, price: int | None, qty: int, tif: str,
                  post_only: bool, reduce_only: bool) -> None:
        inst = self.instruments[symbol]
        cmd: dict[str, Any] = {"op": "new", "id": order_id, "account": self.account, "symbol": symbol, "side": side,
                               "type": type, "qty": fmt(inst.qty(qty)), "tif": tif}
        if price is not None:
            cmd["stop_price" if type == "stop" else "price"] = fmt(inst.price(price))
        if post_only:
            cmd["post_only"] = True
        if reduce_only:
            cmd["reduce_only"] = True
        self._send(cmd)

    def _send_cancel(self, order_id: str) -> None:
        self._send({"op": "cancel", "id": order_id, "account": self.account})

    def _send_amend(self, order_id: str, price: int | None, qty: int | None) -> None:
        order = self.orders[order_id]
        inst = self.instruments[order.symbol]
        cmd: dict[str, Any] = {"op": "amend", "id": order_id, "account": self.account}
        if price is not None:
            cmd["price"] = fmt(inst.price(price))
        if qty is not None:
            cmd["qty"] = fmt(inst.qty(qty))
        self._send(cmd)

    def book(self, symbol: str | None = None) -> BookData:
        return self.host.books[symbol or self.symbols[0]]

    def _publish(self, doc: dict[str, Any]) -> None:
        if self.host.publish is not None:
            self.host.publish(doc)


@dataclass
class Instance:
    id: str
    kind: str
    cls: type[Strategy]
    params: Params
    account: str
    symbols: tuple[str, ...]
    state: str = "starting"
    """starting (waits for the engine thread), running, stopped, failed."""
    error: str = ""
    started_ns: int = 0
    stopped_ns: int = 0
    restored: bool = False
    runner: StrategyRunner | None = None
    """Set by the worker once the strategy is built; its context is `ctx`."""
    ctx: LiveContext | None = None
    worker: StrategyWorker | None = None
    prefix: str = ""
    """Its order ids' prefix in this run: the events about its orders are the ones it gets."""
    bars: BarAggregator | None = None
    bar_ns: int = 60_000_000_000
    stop_requested: bool = False
    stop_ns: int = 0
    """Engine time of the stop handed to the worker, which must finish within STOP_GRACE_NS."""
    overflowed: bool = False
    abandoned: bool = False
    """Its worker was given up by the host: what it still sends is dropped."""
    equity: int = 0
    peak_equity: int = 0
    drawdown: float = 0.0
    """Below peak equity, as a ratio; the drawdown alert watches it."""
    early_signals: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MARKET_BACKLOG))
    """Peers' signals that arrived before its worker existed (StartStrategy answers before the engine's
    next tick launches it), handed to the worker at launch; past the bound the oldest are dropped."""
    early_dropped: int = 0

    def params_text(self) -> dict[str, str]:
        return {k: format_value(v) for k, v in self.params.items() if v is not None}


class StrategyHost:
    def __init__(self, store: Any, instruments: dict[str, Any], clock: Any = time.time_ns, threaded: bool = False) -> None:
        """`threaded`: each instance's callbacks run on a worker thread (the daemon); otherwise on
        the thread that calls `step` and `on_commit`, as soon as they queue them (tests)."""
        self.store = store
        self.instruments = instruments
        self.instances: dict[str, Instance] = {}
        self.now = 0
        self.books: dict[str, BookData] = {}
        """The latest top of book per symbol, replaced whole by the engine thread: what `ctx.book` reads."""
        self.threaded = threaded
        self._clock = clock
        self._lock = threading.Lock()
        self._venue: Venue | None = None
        self.recent_bars: Callable[[str, int], list[Any]] = lambda symbol, interval_ns: []
        """The daemon's closed bars of a symbol at an interval (`Feeds.closed_bars`): what a restored
        `on_bars` strategy's history starts with."""
        self.publish: Any = None
        """Where strategies' signals go (the daemon's peer, `[p2p]`); None: nowhere."""

    # -- requests (any thread) ----------------------------------------------------------------

    def kinds(self) -> dict[str, type[Strategy]]:
        return dict(BUILTINS)

    def start(self, kind: str, params: dict[str, str], account: str = "", symbols: list[str] | None = None) -> Instance:
        """Validate and register; the engine thread calls on_start at its next tick."""
        try:
            cls = load_strategy(kind)
        except Exception as exc:
            raise StrategyRequestError(str(exc)) from None
        try:
            resolved = Params(resolve_params(cls.params, params))
        except ValueError as exc:
            raise StrategyRequestError(str(exc)) from None
        syms = tuple(symbols or ())
        if not syms:
            wanted = resolved.get("symbol")
            syms = (wanted,) if wanted else ("BTC-USD",)
        unknown = [s for s in syms if s not in self.instruments]
        if unknown:
            raise StrategyRequestError(f"unknown symbol(s) {', '.join(unknown)}; known: {', '.join(self.instruments)}")
        try:
            bar_ns = parse_interval(cls.bar_interval)
        except ValueError as exc:
            raise StrategyRequestError(f"{kind}: bar_interval: {exc}") from None
        with self._lock:
            number = 1 + max([int(i) for i in self.instances if i.isdigit()]
                             + [int(r["id"]) for r in self.store.list_strategies() if str(r["id"]).isdigit()], default=0)
            sid = str(number)
            inst = Instance(sid, kind, cls, resolved, account or f"strategy-{sid}", syms, bar_ns=bar_ns,
                            started_ns=self._clock())
            self.instances[sid] = inst
        self._persist(inst, "running")
        log.info("strategy.started id=%s kind=%s account=%s symbols=%s params=%s", sid, kind, inst.account,
                 ",".join(syms), inst.params_text())
        return inst

    def stop(self, sid: str) -> Instance:
        """Ask for a stop; on_stop and the cancels run on the engine thread at its next tick."""
        with self._lock:
            inst = self.instances.get(sid)
            if inst is None:
                raise KeyError(sid)
            if inst.state in ("starting", "running"):
                inst.stop_requested = True
                inst.state = "stopped"
                inst.stopped_ns = self._clock()
        self._persist(inst, inst.state)
        return inst

    def restore(self) -> int:
        """Register the instances that were running when the daemon stopped."""
        count = 0
        for row in self.store.list_strategies(state="running"):
            stored = row.get("params") or {}
            try:
                cls = load_strategy(row["kind"])
                params = Params(resolve_params(cls.params, stored.get("params", {})))
                bar_ns = parse_interval(cls.bar_interval)
            except Exception as exc:
                log.error("strategy.restore_failed id=%s kind=%s error=%s", row["id"], row["kind"], exc)
                self.store.upsert_strategy(row["id"], row["kind"], stored, "failed", row.get("account"), self._clock())
                continue
            inst = Instance(str(row["id"]), row["kind"], cls, params, row.get("account") or f"strategy-{row['id']}",
                            tuple(stored.get("symbols") or ("BTC-USD",)), bar_ns=bar_ns, started_ns=self._clock(),
                            restored=True)
            with self._lock:
                self.instances[inst.id] = inst
            count += 1
        if count:
            log.info("strategy.restored count=%d", count)
        return count

    def status(self, sid: str) -> dict[str, Any]:
        inst = self.instances.get(sid)
        if inst is None:
            row = self.store.get_strategy(sid)
            if row is None:
                raise KeyError(sid)
            stored = row.get("params") or {}
            return {"id": sid, "kind": row["kind"], "params": stored.get("params", {}), "state": row["state"],
                    "account": row.get("account") or "", "symbols": stored.get("symbols", []), "position": "",
                    "pnl": "", "error": "", "started_ns": row.get("created_ns", 0), "stopped_ns": row.get("updated_ns", 0)}
        position, pnl = "", ""
        runner = inst.runner
        if runner is not None and self._venue is not None:
            ctx = runner.ctx
            try:
                position = " ".join(f"{s} {ctx.position(s):+g}" for s in inst.symbols)
                pnl = f"{ctx.pnl():.2f}"
            except Exception:  # read from another thread while the engine thread moves on
                pass
        return {"id": inst.id, "kind": inst.kind, "params": inst.params_text(), "state": inst.state,
                "account": inst.account, "symbols": list(inst.symbols), "position": position, "pnl": pnl,
                "error": inst.error, "started_ns": inst.started_ns, "stopped_ns": inst.stopped_ns}

    def list(self) -> list[dict[str, Any]]:
        ids = list(self.instances)
        for row in self.store.list_strategies():
            if str(row["id"]) not in self.instances:
                ids.append(str(row["id"]))
        return [self.status(i) for i in ids]

    def on_signal(self, doc: dict[str, Any]) -> None:
        """A peer's trading signal (any thread): queued, as market data is, for each starting or running
        instance that trades its symbol; one not launched yet gets it at launch. Under the lock, so
        that what waited for the launch reaches the worker before what comes after."""
        with self._lock:
            for inst in self.instances.values():
                if inst.state not in ("starting", "running") or doc.get("symbol") not in inst.symbols:
                    continue
                if inst.worker is not None:
                    inst.worker.market("signal", [doc])
                    continue
                if len(inst.early_signals) == inst.early_signals.maxlen:
                    inst.early_dropped += 1
                inst.early_signals.append(doc)

    def _persist(self, inst: Instance, state: str) -> None:
        try:
            self.store.upsert_strategy(inst.id, inst.kind, {"params": inst.params_text(), "symbols": list(inst.symbols)},
                                       state, inst.account, self._clock())
        except Exception:
            log.exception("strategy.persist_failed id=%s", inst.id)

    # -- engine thread ----------------------------------------------------------------------

    def step(self, now_ns: int, venue: Venue) -> list[dict[str, Any]]:
        self.now = now_ns
        self._venue = venue
        out: list[dict[str, Any]] = []
        with self._lock:
            instances = list(self.instances.values())
        self._snapshot_books(venue, instances)
        for inst in instances:
            worker = inst.worker
            if worker is None:
                if inst.state == "starting" and not inst.stop_requested:
                    self._launch(inst, now_ns, venue, out)
                inst.stop_requested = False
            elif inst.stop_requested:
                inst.stop_requested = False
                inst.stop_ns = now_ns
                worker.stop()
                log.info("strategy.stopped id=%s", inst.id)
            elif inst.overflowed or (inst.stop_ns and not worker.finished and now_ns - inst.stop_ns > STOP_GRACE_NS):
                self._abandon(inst, venue, out)
            elif inst.state == "running":
                if inst.bars is not None:
                    worker.market("bar", self._bar_data(inst.bars.advance(now_ns)))
                ctx = inst.ctx
                due = ctx is not None and ctx.timers.next_ns is not None and ctx.timers.next_ns <= now_ns
                wants_book = inst.cls.overrides("on_book")
                if due or wants_book:
                    worker.tick(wants_book)
            if inst.ctx is not None and not (inst.overflowed or inst.abandoned):
                out += inst.ctx.take()
            if inst.state == "running":
                self._track_equity(inst, venue)
        return out

    def _snapshot_books(self, venue: Venue, instances: list[Instance]) -> None:
        symbols = {s for inst in instances if inst.state in ("starting", "running") for s in inst.symbols}
        for symbol in symbols:
            book = venue.books[symbol]
            tick = float(venue.instruments[symbol].tick_size)
            bid, ask, last = book.best_bid(), book.best_ask(), venue.last.get(symbol)
            self.books[symbol] = BookData(self.now, symbol, None if bid is None else bid * tick,
                                          None if ask is None else ask * tick, None if last is None else last * tick)

    def _track_equity(self, inst: Instance, venue: Venue) -> None:
        """Equity (cash plus unrealized PnL at the reference price) against its peak, for the
        drawdown alert; read by the alert sampler through `drawdown_signals`."""
        acct = venue.accounts.get(inst.account)
        if acct is None:
            return
        equity = sum(w.balance for w in acct.wallets.values())
        for symbol, pos in acct.positions.items():
            mark = venue.reference_price(symbol)
            if pos.qty and mark is not None:
                equity += pos.unrealized(mark) * venue.instruments[symbol].cash_mult
        inst.peak_equity = max(inst.peak_equity, equity)
        inst.drawdown = (inst.peak_equity - equity) / inst.peak_equity if inst.peak_equity > 0 else 0.0
        inst.equity = equity

    def drawdown_signals(self, _now_ns: int) -> dict[str, dict[tuple, float]]:
        """Alert signals and metrics: each running strategy's drawdown from peak equity (a ratio),
        PnL and positions."""
        running = [i for i in list(self.instances.values()) if i.state == "running"]
        pnl: dict[tuple, float] = {}
        position: dict[tuple, float] = {}
        for inst in running:
            ctx = inst.ctx if inst.runner is not None else None
            if ctx is None:
                continue
            try:  # read while the worker moves on: a torn read is retried next second
                pnl[(("strategy", inst.id),)] = ctx.pnl()
                for symbol in inst.symbols:
                    position[(("strategy", inst.id), ("symbol", symbol))] = ctx.position(symbol)
            except Exception:
                continue
        return {
            "strategy_drawdown_ratio": {(("strategy", i.id),): i.drawdown for i in running},
            "strategy_pnl": pnl,
            "strategy_position": position,
        }

    def lag_signals(self, _now_ns: int) -> dict[str, dict[tuple, float]]:
        """Alert signals and metrics: how far each running strategy is behind its events (waiting,
        and seconds since it last caught up), and the market events it skipped, by kind."""
        events: dict[tuple, float] = {}
        seconds: dict[tuple, float] = {}
        conflated: dict[tuple, float] = {}
        for inst in list(self.instances.values()):
            worker = inst.worker
            if worker is None or inst.state != "running":
                continue
            key = (("strategy", inst.id),)
            events[key], seconds[key] = worker.lag()
            for kind, count in list(worker.conflated.items()):
                conflated[key + (("kind", kind),)] = count
        return {"strategy_lag_events": events, "strategy_lag_seconds": seconds, "strategy_conflated_events": conflated}

    def _launch(self, inst: Instance, now_ns: int, venue: Venue, out: list[dict[str, Any]]) -> None:
        """Cancel what an earlier run left open, seed a restored instance's position, and start its
        worker, which builds the strategy and calls on_start."""
        inst.prefix = f"st{inst.id}-{run_tag(now_ns)}-"
        ctx = inst.ctx = LiveContext(self, venue, inst.symbols, inst.prefix, inst.account)
        stale = f"st{inst.id}-"
        for order in list(venue.orders.values()):  # left open by an earlier run of this instance
            if order.account == inst.account and order.id.startswith(stale):
                out.append({"op": "cancel", "id": order.id, "account": inst.account})
        if inst.restored:
            _seed_ledger(ctx, venue)
            if inst.cls.overrides("on_bars"):
                ctx.warm = {s: self._bar_data(self.recent_bars(s, inst.bar_ns)) for s in inst.symbols}
        inst.bars = BarAggregator([inst.bar_ns], keep=0) if inst.cls.overrides("on_bar") else None
        inst.state = "running"
        worker = StrategyWorker(inst.id, inst.symbols, lambda: self._build(inst, ctx), lambda: self._check_failed(inst),
                                self.books.__getitem__, lambda: self.now, self.threaded)
        with self._lock:
            inst.worker = worker
            if inst.early_dropped:
                worker.conflated["signal"] += inst.early_dropped
            worker.market("signal", list(inst.early_signals))
            inst.early_signals.clear()

    def _build(self, inst: Instance, ctx: LiveContext) -> StrategyRunner | None:
        """On the worker: the strategy's constructor and on_start are its code."""
        try:
            runner = StrategyRunner(inst.id, inst.cls, inst.params, ctx, log_slow=True)
        except Exception as exc:
            inst.state, inst.error = "failed", f"__init__: {type(exc).__name__}: {exc}"
            log.exception("strategy.failed id=%s", inst.id)
            self._persist(inst, "failed")
            return None
        inst.runner = runner
        runner.start()
        return runner

    def _check_failed(self, inst: Instance) -> None:
        runner = inst.runner
        if runner is not None and runner.state == "failed" and inst.state != "failed":
            inst.state, inst.error, inst.stopped_ns = "failed", runner.error, self.now
            self._persist(inst, "failed")

    def _abandon(self, inst: Instance, venue: Venue, out: list[dict[str, Any]]) -> None:
        """A worker too far behind on its own orders, or stuck in a callback since its stop: it runs
        nothing more, its commands not yet taken are dropped, and its open orders are cancelled here."""
        worker = inst.worker
        assert worker is not None
        worker.abandon()
        inst.abandoned = True
        for order in list(venue.orders.values()):
            if order.id.startswith(inst.prefix) and order.is_open:
                out.append({"op": "cancel", "id": order.id, "account": inst.account})
        if inst.overflowed:
            inst.overflowed = False
            inst.state, inst.stopped_ns = "failed", self.now
            inst.error = f"fell more than {MAX_OWN_EVENTS} of its own order events behind"
            log.error("strategy.failed id=%s error=%s", inst.id, inst.error)
            self._persist(inst, "failed")
        else:
            log.error("strategy.stop_overdue id=%s seconds=%d", inst.id, STOP_GRACE_NS // 1_000_000_000)
        inst.stop_ns = 0

    def _bar_data(self, bars: list[Any]) -> list[BarData]:
        out = []
        for bar in bars:
            inst = self.instruments[bar.symbol]
            tick = float(inst.tick_size)
            out.append(BarData(bar.start_ns, bar.start_ns + bar.interval_ns, bar.symbol, bar.open * tick,
                               bar.high * tick, bar.low * tick, bar.close * tick, bar.volume * float(inst.lot_size)))
        return out

    def on_commit(self, batch: Batch, venue: Venue) -> None:
        """Listener: each running instance gets its own order events and its symbols' trades and
        bars, queued for its worker; the orders it makes go out at the next step."""
        with self._lock:
            instances = [i for i in self.instances.values() if i.worker is not None and i.state == "running"
                         and not i.overflowed]
        if not instances:
            return
        self._snapshot_books(venue, instances)
        events = [e for _cmd, evs in batch for e in evs]
        trades = [(e.symbol, e.ts, e.price, e.qty, e.taker.side.value) for e in events if type(e) is OrderFilled]
        for inst in instances:
            worker = inst.worker
            assert worker is not None
            own = _own_events(events, inst.prefix)
            if own and not worker.own(own):
                inst.overflowed = True  # the next step fails it and cancels its orders
                continue
            if trades:
                self._trades(inst, trades, venue)

    def on_print(self, venue: Venue, symbol: str, ts: int, price: int, qty: int, side: str) -> None:
        """A trade that printed elsewhere (a live exchange feed's, on the engine thread): for the
        strategies on its symbol, as a trade here would be."""
        with self._lock:
            instances = [i for i in self.instances.values() if i.worker is not None and i.state == "running"
                         and not i.overflowed and symbol in i.symbols]
        for inst in instances:
            self._trades(inst, [(symbol, ts, price, qty, side)], venue)

    def _trades(self, inst: Instance, trades: list[tuple[str, int, int, int, str]], venue: Venue) -> None:
        """Trades (symbol, ts, price ticks, lots, taker side) into an instance's bars and `on_trade`."""
        worker = inst.worker
        assert worker is not None
        wants_trades = inst.cls.overrides("on_trade")
        if not (wants_trades or inst.bars is not None):
            return
        ticks: list[TradeData] = []
        for symbol, ts, price, qty, side in trades:
            if symbol not in inst.symbols:
                continue
            if inst.bars is not None:
                worker.market("bar", self._bar_data(inst.bars.on_trade(symbol, ts, price, qty)))
            if wants_trades:
                instrument = venue.instruments[symbol]
                ticks.append(TradeData(ts, symbol, price * float(instrument.tick_size), qty * float(instrument.lot_size), side))
        worker.market("trade", ticks)


def _own_events(events: list[Event], prefix: str) -> list[Event]:
    """The events about orders whose id starts with `prefix`; those that carry an order (still
    changed by the engine thread) carry a copy of it as published, for the worker to read."""
    own: list[Event] = []
    for event in events:
        kind = type(event)
        if kind is OrderFilled:
            if event.taker.id.startswith(prefix) or event.maker.id.startswith(prefix):  # type: ignore[union-attr]
                own.append(event)
        elif kind is OrderRejected:
            if event.order_id.startswith(prefix):  # type: ignore[union-attr]
                own.append(event)
        elif event.order.id.startswith(prefix):  # type: ignore[union-attr]
            if kind is OrderAccepted or kind is OrderAmended or kind is OrderTriggered:
                event = kind(event.ts, copy.copy(event.order))  # type: ignore[call-arg, union-attr]
            own.append(event)
    return own


def _seed_ledger(ctx: Context, venue: Venue) -> None:
    """After a restart: the account's position (and its cost and fees) as the strategy's own."""
    acct = venue.accounts.get(ctx.account)
    if acct is None:
        return
    for symbol in ctx.symbols:
        pos = acct.positions.get(symbol)
        if pos is None:
            continue
        ledger = ctx.ledgers[symbol]
        scale = ledger.tick * ledger.lot
        ledger.lots = pos.qty
        ledger.fees = pos.fees / CASH_SCALE
        ledger.cash = -pos.cost * scale + pos.realized * scale - ledger.fees
