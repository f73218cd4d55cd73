"""Topic fan-out from the engine thread to many readers that must never slow it down.

Publishing only appends to each subscriber's bounded queue. A subscriber that falls too far
behind is cut off (its queue is closed with a reason) rather than growing memory or blocking
the engine; readers decide what that means (a gRPC stream ends, a book view re-snapshots).
"""

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

LAGGING = "lagging: the client did not keep up with the stream"


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
        sub = Subscription(frozenset(topics), maxsize, accept)
        with self._lock:
            for topic in sub.topics:
                self._subs[topic] = [*self._subs.get(topic, ()), sub]
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close("unsubscribed")
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
