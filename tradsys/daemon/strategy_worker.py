"""One live strategy instance's callbacks, run off the engine thread and fed through a bounded inbox.

The engine thread only puts things in the inbox (`own`, `market`, `tick`, `stop`): it never runs
the strategy's code and never waits for it, so a slow strategy lags behind the market instead of
holding up the venue. The worker takes, in this order:

- its own order events (accepted, filled, cancelled, refused...): all of them, in order, before
  anything else waiting, as they keep its view of its orders true. A strategy more than
  `MAX_OWN_EVENTS` behind on them cannot trade safely: `own` returns False and the host fails it.
- market data (trades, bars) and peers' signals, first in first out, at most `MARKET_BACKLOG` waiting: past it the
  oldest is dropped (conflated), so a lagging strategy acts on recent data.
- a tick (due timers, then on_book with the latest book of each symbol): at most one waits; a
  newer tick merges into it, and the books it skips count as conflated.

Threaded, each instance has a daemon thread of its own; inline (`threaded=False`), the caller runs
what it queued at once, which drives a host deterministically in tests.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from tradsys.engine import Event
from tradsys.engine.strategy import BarData, BookData, StrategyRunner, TradeData

MAX_OWN_EVENTS = 100_000
MARKET_BACKLOG = 100


class StrategyWorker:
    def __init__(self, sid: str, symbols: tuple[str, ...], launch: Callable[[], StrategyRunner | None],
                 settle: Callable[[], None], book: Callable[[str], BookData], now: Callable[[], int],
                 threaded: bool = True) -> None:
        """`launch` builds the runner and calls on_start (on the worker), `settle` runs after each
        piece of work (the host notes a failure), `book` and `now` are the engine's latest."""
        self.sid = sid
        self.symbols = symbols
        self.runner: StrategyRunner | None = None
        self.conflated: Counter[str] = Counter()
        """Market events dropped or merged unseen, by kind (trade, bar, book), since the start."""
        self.finished = False
        """The worker has stopped (on_stop done, or abandoned) and will run nothing more."""
        self._launch, self._settle, self._book, self._now = launch, settle, book, now
        self._cond = threading.Condition(threading.Lock())
        self._own: deque[list[Event]] = deque()
        self._own_count = 0
        self._market: deque[tuple[str, Any]] = deque()
        self._tick = False
        self._stop = False
        self._abandoned = False
        self._behind_since: float | None = None
        self._threaded = threaded
        if threaded:
            threading.Thread(target=self._loop, name=f"tradsys-strategy-{sid}", daemon=True).start()
        else:
            self._run_pending()

    # -- engine thread --------------------------------------------------------------------------

    def own(self, events: list[Event]) -> bool:
        """Queue the instance's own order events; False if it is too far behind on them."""
        with self._cond:
            if self._own_count + len(events) > MAX_OWN_EVENTS:
                return False
            self._own.append(events)
            self._own_count += len(events)
            self._woken()
        self._inline()
        return True

    def market(self, kind: str, items: list[TradeData] | list[BarData] | list[dict[str, Any]]) -> None:
        if not items:
            return
        with self._cond:
            for item in items:
                if len(self._market) >= MARKET_BACKLOG:
                    self.conflated[self._market.popleft()[0]] += 1
                self._market.append((kind, item))
            self._woken()
        self._inline()

    def tick(self, books: bool) -> None:
        """Timers are due, or the strategy wants the book: at most one tick waits."""
        with self._cond:
            if self._tick:
                if books:
                    self.conflated["book"] += len(self.symbols)
            else:
                self._tick = True
                self._woken()
        self._inline()

    def stop(self) -> None:
        """Graceful: what is queued is dropped, on_stop runs and open orders are cancelled."""
        with self._cond:
            self._stop = True
            self._woken()
        self._inline()

    def abandon(self) -> None:
        """Run nothing more, not even on_stop (the callback under way, if any, finishes)."""
        with self._cond:
            self._abandoned = True
            self.finished = True
            self._cond.notify()

    def lag(self) -> tuple[int, float]:
        """Events waiting, and seconds since the worker last had nothing to do (0 when caught up)."""
        with self._cond:
            waiting = self._own_count + len(self._market) + int(self._tick)
            since = self._behind_since
        return waiting, 0.0 if since is None else time.monotonic() - since

    def _woken(self) -> None:
        if self._behind_since is None:
            self._behind_since = time.monotonic()
        self._cond.notify()

    def _inline(self) -> None:
        if not self._threaded:
            self._run_pending()

    # -- worker ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while self._run_pending():
            with self._cond:
                while not self._waiting() and not self._abandoned:
                    self._cond.wait()

    def _waiting(self) -> bool:
        return bool(self._own or self._market or self._tick or self._stop)

    def _run_pending(self) -> bool:
        """Handle what is queued, one piece at a time; False once the worker has finished."""
        if self.runner is None and not self._abandoned:
            self.runner = self._launch()
            self._settle()
        while True:
            runner = self.runner
            if runner is None or not runner.running:
                self.abandon()  # failed, or stopped: nothing more to run
            with self._cond:
                if self._abandoned:
                    return False
                if not self._waiting():
                    self._behind_since = None
                    return True
                kind, item = self._take()
            self._handle(runner, kind, item)  # type: ignore[arg-type]
            self._settle()

    def _take(self) -> tuple[str, Any]:
        """The next piece of work, under the lock: a stop, else own events, else market data or a tick."""
        if self._stop:
            self._own.clear()
            self._market.clear()
            self._own_count, self._tick, self._stop = 0, False, False
            return "stop", None
        if self._own:
            batch = self._own.popleft()
            self._own_count -= len(batch)
            return "own", batch
        if self._market:
            return self._market.popleft()
        self._tick = False
        return "tick", None

    def _handle(self, runner: StrategyRunner, kind: str, item: Any) -> None:
        if kind == "own":
            runner.events(item)
        elif kind == "stop":
            runner.stop()
        elif kind == "tick":
            runner.timers(self._now())
            if runner.running and runner.wants["on_book"]:
                for symbol in self.symbols:
                    if not runner.call("on_book", self._book(symbol)):
                        return
        else:
            runner.call(f"on_{kind}", item)
