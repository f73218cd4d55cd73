"""Topic fan-out from the engine thread to many readers that must never slow it down.

Publishing only appends to each subscription's bounded inbox. A reader that falls too far behind
is cut off (its inbox is closed with a reason) rather than growing memory or blocking the engine;
readers decide what that means (a gRPC stream ends, a WebSocket book view re-snapshots).
"""

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

LAGGING = "lagging: the client did not keep up with the stream"
UNSUBSCRIBED = "unsubscribed"


class Inbox(Protocol):
    """Where a subscription's items go: bounded, never blocking the publisher."""

    def put(self, topic: str, item: Any) -> None: ...
    def close(self, reason: str) -> None: ...


class Subscription:
    """Topics of one inbox (several subscriptions may share one), with an optional filter.

    Unsubscribing detaches it quietly; any other close (the daemon shutting down) closes the inbox.
    """

    def __init__(self, topics: frozenset[str], inbox: Inbox, accept: Callable[[str, Any], bool] | None = None) -> None:
        self.topics = topics
        self.inbox = inbox
        self.accept = accept
        self.closed_reason: str | None = None

    def put(self, topic: str, item: Any) -> None:
        if self.closed_reason is None and (self.accept is None or self.accept(topic, item)):
            self.inbox.put(topic, item)

    def close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        if reason != UNSUBSCRIBED:
            self.inbox.close(reason)


class Encoded:
    """Published items encoded once for all the readers that send them, not once per reader; used
    on one loop thread."""

    def __init__(self, limit: int = 8192) -> None:
        self.limit = limit
        self.entries: dict[int, tuple[Any, Any]] = {}

    def get(self, item: Any, encode: Callable[[Any], Any]) -> Any:
        hit = self.entries.get(id(item))
        if hit is not None and hit[0] is item:
            return hit[1]
        if len(self.entries) >= self.limit:
            self.entries.clear()
        data = encode(item)
        self.entries[id(item)] = (item, data)  # holding the item keeps its id from being reused
        return data


class Hub:
    def __init__(self) -> None:
        self._subs: dict[str, list[Subscription]] = {}
        self._lock = threading.Lock()

    def attach(self, sub: Subscription) -> Subscription:
        """Register a subscription on its topics."""
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
