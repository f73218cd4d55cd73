"""Topic fan-out from the engine thread to many readers that must never slow it down.

Publishing only appends to each subscriber's bounded queue. A subscriber that falls too far
behind is cut off (its queue is closed with a reason) rather than growing memory or blocking
the engine; readers decide what that means (a gRPC stream ends, a book view re-snapshots).
"""

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

LAGGING = "lagging: the client did not keep up with the stream"
UNSUBSCRIBED = "unsubscribed"


class Subscription:
    """A bounded, thread-safe inbox; `get` blocks, `close` wakes every waiter."""

    def __init__(self, topics: frozenset[str], maxsize: int, accept: Callable[[str, Any], bool] | None) -> None:
        self.topics = topics
        self.maxsize = maxsize
        self.accept = accept
        self.closed_reason: str | None = None
        self._items: deque[tuple[str, Any]] = deque()
        self._ready = threading.Condition()

    def put(self, topic: str, item: Any) -> None:
        if self.accept is not None and not self.accept(topic, item):
            return
        with self._ready:
            if self.closed_reason is not None:
                return
            if len(self._items) >= self.maxsize:
                self.closed_reason = LAGGING
                self._items.clear()
            else:
                self._items.append((topic, item))
            self._ready.notify()

    def get(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """The next item, or None on timeout or once closed and drained."""
        with self._ready:
            if not self._items and self.closed_reason is None:
                self._ready.wait(timeout)
            if self._items:
                return self._items.popleft()
            return None

    def close(self, reason: str) -> None:
        with self._ready:
            if self.closed_reason is None:
                self.closed_reason = reason
            self._ready.notify_all()


class Hub:
    def __init__(self) -> None:
        self._subs: dict[str, list[Subscription]] = {}
        self._lock = threading.Lock()

    def subscribe(
        self, topics: set[str] | frozenset[str], maxsize: int = 10_000,
        accept: Callable[[str, Any], bool] | None = None,
    ) -> Subscription:
        return self.attach(Subscription(frozenset(topics), maxsize, accept))

    def attach(self, sub: Subscription) -> Subscription:
        """Register a subscription built elsewhere (e.g. a `LoopSubscription`) on its topics."""
        with self._lock:
            for topic in sub.topics:
                self._subs[topic] = [*self._subs.get(topic, ()), sub]
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close(UNSUBSCRIBED)
        with self._lock:
            for topic in sub.topics:
                rest = [s for s in self._subs.get(topic, ()) if s is not sub]
                if rest:
                    self._subs[topic] = rest
                else:
                    self._subs.pop(topic, None)

    def wants(self, topic: str) -> bool:
        """Lets the publisher skip building records nobody reads."""
        return topic in self._subs

    def publish(self, topic: str, item: Any) -> None:
        for sub in self._subs.get(topic, ()):
            sub.put(topic, item)

    def close_all(self, reason: str) -> None:
        with self._lock:
            subs = {id(s): s for subs in self._subs.values() for s in subs}
        for sub in subs.values():
            sub.close(reason)


Conflate = Callable[[deque[tuple[str, Any]]], bool]
"""Called on the publisher's thread, under the inbox lock, when the inbox is full: may replace
pending items with fewer (e.g. book deltas with a re-snapshot marker); True if room was made."""


class LoopInbox:
    """A bounded inbox filled on any thread (the engine's) and drained by one asyncio task.

    `put` never blocks and wakes the loop once per burst (`call_soon_threadsafe(notify)`), not
    once per item. When full, `conflate` may make room; if it cannot, the inbox stops taking
    items and `closed_reason` says the reader fell too far behind.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, notify: Callable[[], None], maxsize: int,
                 conflate: Conflate | None = None) -> None:
        self.maxsize = maxsize
        self.closed_reason: str | None = None
        self.conflations = 0
        self._loop = loop
        self._notify = notify
        self._conflate = conflate
        self._items: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._woken = False

    def put(self, topic: str, item: Any) -> None:
        with self._lock:
            if self.closed_reason is not None:
                return
            items = self._items
            if len(items) >= self.maxsize:
                if self._conflate is not None and self._conflate(items):
                    self.conflations += 1
                else:
                    self.closed_reason = LAGGING
                    items.clear()
            if self.closed_reason is None:
                items.append((topic, item))
            if self._woken:
                return
            self._woken = True
        try:
            self._loop.call_soon_threadsafe(self._notify)
        except RuntimeError:  # the loop is closed: the daemon is stopping
            pass

    def drain(self) -> list[tuple[str, Any]]:
        """Everything pending, oldest first; the next `put` wakes the loop again."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._woken = False
            return items

    def close(self, reason: str) -> None:
        with self._lock:
            if self.closed_reason is None:
                self.closed_reason = reason
            self._items.clear()
        try:
            self._loop.call_soon_threadsafe(self._notify)
        except RuntimeError:
            pass


class LoopSubscription(Subscription):
    """A hub subscription that feeds a `LoopInbox` (several subscriptions may share one).

    Unsubscribing detaches it quietly; any other close (the daemon shutting down) closes the inbox.
    """

    def __init__(self, topics: frozenset[str], inbox: LoopInbox, accept: Callable[[str, Any], bool] | None = None) -> None:
        super().__init__(topics, inbox.maxsize, accept)
        self.inbox = inbox

    def put(self, topic: str, item: Any) -> None:
        if self.closed_reason is None and (self.accept is None or self.accept(topic, item)):
            self.inbox.put(topic, item)

    def get(self, timeout: float | None = None) -> tuple[str, Any] | None:
        raise TypeError("a LoopSubscription is read through its inbox")

    def close(self, reason: str) -> None:
        super().close(reason)
        if reason != UNSUBSCRIBED:
            self.inbox.close(reason)
