"""Live strategies: the same Strategy classes as the backtester, run on the daemon's engine thread.

`StrategyHost` is an actor (its `step` returns the strategies' order commands, which the core
stamps, risk-checks, applies and journals like any client's) and a listener (`on_commit` turns
each committed batch into on_order / on_fill / on_trade / on_bar callbacks). Every callback runs on
the engine thread, so a strategy always sees a consistent venue. Orders a strategy makes in a
callback reach the venue at the next tick (50 ms by default).

Each instance trades for its own account (default `strategy-<id>`) under that account's risk
limits. A callback that raises fails its instance only: the traceback is logged, its open orders
are cancelled, the state becomes "failed"; other instances and the daemon go on.

Instances are kept in the store's `strategies` table (params and symbols in `params`): those
"running" when the daemon stopped are started again when it starts, after cancelling orders that
their earlier run left open.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tradsys.daemon.ids import run_tag
from tradsys.engine import BarAggregator, OrderFilled, Venue, parse_interval
from tradsys.engine.commands import fmt
from tradsys.engine.instrument import CASH_SCALE
from tradsys.engine.strategy import (
    BUILTINS,
    BarData,
    BookData,
    Context,
    Params,
    Strategy,
    StrategyRunner,
    TradeData,
    load_strategy,
    resolve_params,
)
from tradsys.engine.strategy.params import format_value

log = logging.getLogger("tradsys.strategy")

Batch = list[tuple[dict[str, Any], list[Any]]]


class StrategyRequestError(ValueError):
    """A start request the host refuses: unknown kind or symbol, bad parameters."""


class LiveContext(Context):
    def __init__(self, host: "StrategyHost", venue: Venue, symbols: tuple[str, ...], prefix: str, account: str) -> None:
        super().__init__(venue.instruments, symbols, prefix, account, log)
        self.host = host
        self.venue = venue
        self.out: list[dict[str, Any]] = []

    @property
    def now(self) -> int:
        return self.host.now

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
        self.out.append(cmd)

    def _send_cancel(self, order_id: str) -> None:
        self.out.append({"op": "cancel", "id": order_id, "account": self.account})

    def _send_amend(self, order_id: str, price: int | None, qty: int | None) -> None:
        order = self.orders[order_id]
        inst = self.instruments[order.symbol]
        cmd: dict[str, Any] = {"op": "amend", "id": order_id, "account": self.account}
        if price is not None:
            cmd["price"] = fmt(inst.price(price))
        if qty is not None:
            cmd["qty"] = fmt(inst.qty(qty))
        self.out.append(cmd)

    def book(self, symbol: str | None = None) -> BookData:
        symbol = symbol or self.symbols[0]
        venue = self.venue
        book = venue.books[symbol]
        tick = float(venue.instruments[symbol].tick_size)
        bid, ask, last = book.best_bid(), book.best_ask(), venue.last.get(symbol)
        return BookData(self.now, symbol, None if bid is None else bid * tick, None if ask is None else ask * tick,
                        None if last is None else last * tick)


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
    bars: BarAggregator | None = None
    bar_ns: int = 60_000_000_000
    stop_requested: bool = False
    seen: int = field(default=0)
    equity: int = 0
    peak_equity: int = 0
    drawdown: float = 0.0
    """Below peak equity, as a ratio; the drawdown alert watches it."""

    def params_text(self) -> dict[str, str]:
        return {k: format_value(v) for k, v in self.params.items() if v is not None}


class StrategyHost:
    def __init__(self, store: Any, instruments: dict[str, Any], clock: Any = time.time_ns) -> None:
        self.store = store
        self.instruments = instruments
        self.instances: dict[str, Instance] = {}
        self.now = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._venue: Venue | None = None

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
        for inst in instances:
            runner = inst.runner
            if runner is None:
                if inst.state != "starting" and not inst.stop_requested:
                    continue
                if inst.stop_requested and inst.state == "stopped" and runner is None:
                    inst.stop_requested = False
                    continue
                runner = self._launch(inst, now_ns, venue, out)
                if runner is None:
                    continue
            if inst.stop_requested:
                inst.stop_requested = False
                runner.stop()
                self._drain(inst, out)
                log.info("strategy.stopped id=%s", inst.id)
                continue
            if not runner.running:
                continue
            runner.timers(now_ns)
            if runner.running and runner.wants["on_book"]:
                for symbol in inst.symbols:
                    if not runner.call("on_book", runner.ctx.book(symbol)):
                        break
            if runner.running and runner.wants["on_bar"] and inst.bars is not None:
                self._bars(inst, inst.bars.advance(now_ns))
            self._check_failed(inst)
            self._drain(inst, out)
            self._track_equity(inst, venue)
        return out

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
            ctx = inst.runner.ctx if inst.runner is not None else None
            if ctx is None:
                continue
            try:  # read while the engine thread moves on: a torn read is retried next second
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

    def _launch(self, inst: Instance, now_ns: int, venue: Venue, out: list[dict[str, Any]]) -> StrategyRunner | None:
        prefix = f"st{inst.id}-{run_tag(now_ns)}-"
        ctx = LiveContext(self, venue, inst.symbols, prefix, inst.account)
        stale = f"st{inst.id}-"
        for order in list(venue.orders.values()):  # left open by an earlier run of this instance
            if order.account == inst.account and order.id.startswith(stale):
                out.append({"op": "cancel", "id": order.id, "account": inst.account})
        if inst.restored:
            _seed_ledger(ctx, venue)
        try:
            runner = StrategyRunner(inst.id, inst.cls, inst.params, ctx, log_slow=True)
        except Exception as exc:
            inst.state, inst.error = "failed", f"__init__: {type(exc).__name__}: {exc}"
            log.exception("strategy.failed id=%s", inst.id)
            self._persist(inst, "failed")
            return None
        inst.runner = runner
        inst.bars = BarAggregator([inst.bar_ns], keep=0) if runner.wants["on_bar"] else None
        inst.state = "running"
        runner.start()
        self._check_failed(inst)
        self._drain(inst, out)
        return runner

    def _check_failed(self, inst: Instance) -> None:
        runner = inst.runner
        if runner is not None and runner.state == "failed" and inst.state != "failed":
            inst.state, inst.error, inst.stopped_ns = "failed", runner.error, self.now
            self._persist(inst, "failed")

    def _drain(self, inst: Instance, out: list[dict[str, Any]]) -> None:
        runner = inst.runner
        if runner is not None and runner.ctx.out:  # type: ignore[attr-defined]
            out += runner.ctx.out  # type: ignore[attr-defined]
            runner.ctx.out = []  # type: ignore[attr-defined]

    def _bars(self, inst: Instance, bars: list[Any]) -> None:
        runner = inst.runner
        assert runner is not None
        for bar in bars:
            inst_ = self.instruments[bar.symbol]
            tick = float(inst_.tick_size)
            lot = float(inst_.lot_size)
            data = BarData(bar.start_ns, bar.start_ns + bar.interval_ns, bar.symbol, bar.open * tick, bar.high * tick,
                           bar.low * tick, bar.close * tick, bar.volume * lot)
            if not runner.call("on_bar", data):
                return

    def on_commit(self, batch: Batch, venue: Venue) -> None:
        """Listener: committed events become callbacks; orders they make go out at the next step."""
        with self._lock:
            instances = [i for i in self.instances.values() if i.runner is not None and i.runner.running]
        if not instances:
            return
        events = [e for _cmd, evs in batch for e in evs]
        trades = [e for e in events if type(e) is OrderFilled]
        for inst in instances:
            runner = inst.runner
            assert runner is not None
            runner.events(events)
            if trades and runner.running and (runner.wants["on_trade"] or inst.bars is not None):
                for fill in trades:
                    if fill.symbol not in inst.symbols:
                        continue
                    instrument = venue.instruments[fill.symbol]
                    if inst.bars is not None:
                        self._bars(inst, inst.bars.on_trade(fill.symbol, fill.ts, fill.price, fill.qty))
                    if runner.running and runner.wants["on_trade"]:
                        trade = TradeData(fill.ts, fill.symbol, fill.price * float(instrument.tick_size),
                                          fill.qty * float(instrument.lot_size), fill.taker.side.value)
                        if not runner.call("on_trade", trade):
                            break
            self._check_failed(inst)


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
