"""Runs one strategy instance: safe callbacks and the venue's events turned into strategy events.

Shared by the backtester and the daemon's strategy host, so that a strategy sees the same
callbacks in the same order in both. A callback that raises stops the instance (state "failed",
traceback kept and logged) and cancels its open orders; the caller carries on.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from tradsys.engine.events import (
    Event, OrderAccepted, OrderAmended, OrderCancelled, OrderExpired, OrderFilled, OrderRejected, OrderTriggered,
)
from tradsys.engine.strategy.base import Strategy
from tradsys.engine.strategy.context import Context
from tradsys.engine.strategy.params import Params

log = logging.getLogger("tradsys.strategy")

SLOW_CALLBACK_S = 0.05
"""A callback slower than this is logged with its time: live it makes the strategy lag."""
SLOW_WARN_EVERY_S = 10.0
"""At most one slow-callback warning per instance in this time, counting the slow calls since the last."""


class StrategyRunner:
    __slots__ = ("id", "strategy", "ctx", "state", "error", "wants", "slow_calls", "slow_next", "log_slow", "columns")

    def __init__(self, id: str, cls: type[Strategy], params: Params, ctx: Context, log_slow: bool = False) -> None:
        self.id = id
        self.ctx = ctx
        self.state = "created"
        self.error = ""
        self.slow_calls = 0
        self.slow_next = 0.0
        self.log_slow = log_slow
        self.strategy = cls(ctx, params)
        self.wants = {name: cls.overrides(name) for name in (
            "on_bar", "on_trade", "on_book", "on_fill", "on_order", "on_timer")}
        self.columns = cls.overrides("on_bars")
        """Bars go to on_bars, through the context's history, instead of on_bar."""

    @property
    def running(self) -> bool:
        return self.state == "running"

    def call(self, name: str, *args: Any) -> bool:
        """Run one callback; False (and the instance stopped) if it raised."""
        if self.state != "running" and name != "on_start":
            return False
        started = time.perf_counter() if self.log_slow else 0.0
        try:
            if name == "on_bar" and self.columns:  # the bar joins its symbol's history first
                bars = self.ctx.bars(args[0].symbol)
                bars.append(args[0], self.ctx.to_ticks)
                self.strategy.on_bars(bars)
            else:
                getattr(self.strategy, name)(*args)
        except Exception as exc:  # user code: contain it
            self.fail(name, exc)
            return False
        if self.log_slow:
            took = time.perf_counter() - started
            if took > SLOW_CALLBACK_S:
                self.slow_calls += 1
                if started >= self.slow_next:
                    self.slow_next = started + SLOW_WARN_EVERY_S
                    log.warning("strategy.slow_callback id=%s callback=%s seconds=%.3f slow_calls=%d", self.id, name,
                                took, self.slow_calls)
                    self.slow_calls = 0
        return True

    def start(self) -> bool:
        self.state = "running"
        return self.call("on_start")

    def stop(self) -> None:
        """Graceful stop: on_stop, then cancel whatever is still open."""
        if self.state == "running":
            self.call("on_stop")
            if self.state == "running":
                self.state = "stopped"
        self.ctx.cancel_all()
        self.ctx.stopped = True

    def fail(self, where: str, exc: BaseException) -> None:
        self.state = "failed"
        self.error = f"{where}: {type(exc).__name__}: {exc}"
        text = "".join(traceback.format_exception(exc))
        log.error("strategy.failed id=%s callback=%s\n%s", self.id, where, text)
        self.ctx.messages.append((self._now(), f"FAILED in {where}:\n{text}"))
        self.ctx.cancel_all()
        self.ctx.stopped = True

    def _now(self) -> int:
        try:
            return self.ctx.now
        except Exception:
            return 0

    def timers(self, now: int) -> None:
        ctx = self.ctx
        if ctx.timers.next_ns is not None and ctx.timers.next_ns <= now:
            for name in ctx.timers.due(now):
                if not self.call("on_timer", name):
                    return

    def events(self, events: list[Event]) -> None:
        """The venue's events: those about this instance's orders update its view of them (see
        `Context.record_*`) and become on_order / on_fill."""
        ctx = self.ctx
        mine = ctx.orders
        for event in events:
            if type(event) is OrderFilled:
                for order, fee, liq, left in ((event.taker, event.taker_fee, "taker", event.taker_open),
                                              (event.maker, event.maker_fee, "maker", event.maker_open)):
                    if order.id in mine:
                        fill = ctx.record_fill(event.ts, order.id, event.price, event.qty, left, fee, liq)
                        if self.state == "running" and self.wants["on_fill"]:
                            self.call("on_fill", fill)
                continue
            if type(event) is OrderRejected:
                if event.order_id not in mine:
                    continue
                data = ctx.record_refusal(event.order_id, event.op, event.reason)
            else:
                order = event.order  # type: ignore[union-attr]
                if order.id not in mine:
                    continue
                kind = type(event)
                if kind is OrderCancelled:
                    data = ctx.record_closed(order.id, "cancelled", event.reason)  # type: ignore[union-attr]
                elif kind is OrderExpired:
                    data = ctx.record_closed(order.id, "expired", "expired")
                elif kind is OrderAccepted or kind is OrderAmended or kind is OrderTriggered:
                    # Live, the order may be further on than this event (events are published after
                    # the batch): a closed one keeps its open quantity until its own closing event.
                    data = ctx.record_update(order.id, order.price, order.open_qty if order.is_open else None,
                                             answer=kind is not OrderTriggered)
                else:
                    continue
            if data is not None and self.state == "running" and self.wants["on_order"]:
                self.call("on_order", data)
