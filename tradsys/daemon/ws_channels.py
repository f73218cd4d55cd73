"""WebSocket channels: what a channel name means (a hub topic and filter), and one session's
subscriptions, which all feed its one inbox and keep each book channel's seq gapless."""

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tradsys.daemon.auth import PermissionDenied, Principal, readable
from tradsys.daemon.book_feed import MAX_DEPTH, BookView, book_topic
from tradsys.daemon.core import Core
from tradsys.daemon.feeds import Feeds
from tradsys.daemon.hub import Hub, LoopInbox, Subscription
from tradsys.daemon.ws_codecs import WsError

SNAP = "\0snapshot"
"""Inbox topic of a marker asking the writer for a fresh book snapshot (item: the channel)."""

_DEPTHS = frozenset(str(n) for n in range(1, MAX_DEPTH + 1))
"""The N of `book:SYM:N`, spelled one way only so that a channel is its hub topic."""

Filter = Callable[[str, Any], bool]


def conflate(items: deque[tuple[str, Any]]) -> bool:
    """Inbox overflow (engine thread): drop pending book deltas, ask for one snapshot per book channel instead."""
    channels: dict[str, None] = {}
    kept: list[tuple[str, Any]] = []
    for topic, item in items:
        if topic.startswith("book:"):
            channels[topic] = None
        elif topic == SNAP:
            channels[item] = None
        else:
            kept.append((topic, item))
    if len(kept) + len(channels) >= len(items):
        return False
    items.clear()
    items.extend(kept)
    items.extend((SNAP, c) for c in channels)
    return True


class Routes:
    """The channels of this daemon: each name's hub topic and filter, and the book snapshot a
    book channel starts from."""

    def __init__(self, core: Core, feeds: Feeds) -> None:
        self.core = core
        self.feeds = feeds
        self.symbols = tuple(core.venue.instruments)

    def topic(self, channel: str, principal: Principal) -> tuple[str, Filter | None]:
        """The hub topic and filter of a channel name, or WsError naming what is valid."""
        kind, _, rest = channel.partition(":")
        if kind == "trades" and rest in self.symbols:
            return channel, None
        if kind == "book":
            symbol, _, depth = rest.partition(":")
            if symbol in self.symbols and (not depth or depth in _DEPTHS):
                return book_topic(symbol, int(depth or 0)), None
        if kind == "bars":
            symbol, _, interval = rest.partition(":")
            if symbol in self.symbols and interval in self.feeds.intervals:
                return f"bars:{symbol}", lambda _topic, bar: bar["interval"] == interval
        if kind in ("orders", "positions") and not rest:
            try:
                mine = readable(principal)
            except PermissionDenied as exc:
                raise WsError("permission_denied", str(exc)) from None
            if mine is None:
                return kind, None
            if kind == "orders":
                return kind, lambda _topic, ev: ev["order"].get("account") in mine
            return kind, lambda _topic, pos: pos.get("account") in mine
        if channel == "alerts":
            return channel, None
        symbols = "|".join(self.symbols)
        raise WsError("not_found", f"unknown channel {channel!r}; channels are book:SYM (whole book), book:SYM:N (top N, "
                      f"1-{MAX_DEPTH}), trades:SYM, "
                      f"bars:SYM:INTERVAL ({', '.join(self.feeds.intervals)}), orders, positions, alerts; "
                      f"SYM is {symbols}")

    async def snapshot(self, symbol: str, depth: int) -> BookView:
        """The book now, read on the engine after everything published before it (off the loop)."""
        feed = self.feeds.book
        return await asyncio.get_running_loop().run_in_executor(
            None, self.core.query, lambda venue: feed.snapshot(venue, symbol, depth)
        )


@dataclass(slots=True)
class _Book:
    """A book channel of a session: `book:SYM` or `book:SYM:N`."""

    symbol: str
    depth: int
    seq: int | None = None
    """Last seq sent; None until the snapshot is."""


class Channels:
    """One session's channels: a hub subscription each, all feeding the session's inbox."""

    def __init__(self, routes: Routes, hub: Hub, inbox: LoopInbox, max_channels: int) -> None:
        self.routes = routes
        self.hub = hub
        self.inbox = inbox
        self.max_channels = max_channels
        self.subs: dict[str, Subscription] = {}
        self.books: dict[str, _Book] = {}

    def subscribe(self, channels: list[str], principal: Principal) -> list[str]:
        """Add `channels` (WsError if one is unknown, not the principal's, or over the limit); all channels now."""
        wanted = {c: self.routes.topic(c, principal) for c in channels if c not in self.subs}
        if len(self.subs) + len(wanted) > self.max_channels:
            raise WsError("rate_limited", f"at most {self.max_channels} channels per connection")
        for channel, (topic, accept) in wanted.items():
            sub = Subscription(frozenset({topic}), self.inbox, accept)
            self.subs[channel] = sub
            self.hub.attach(sub)
            if channel.startswith("book:"):
                symbol, _, depth = channel[5:].partition(":")
                self.books[channel] = _Book(symbol, int(depth or 0))
                self.inbox.put(SNAP, channel)  # after attach: the snapshot covers every delta before it
        return sorted(self.subs)

    def unsubscribe(self, channels: list[str]) -> list[str]:
        for channel in channels:
            sub = self.subs.pop(channel, None)
            if sub is not None:
                self.hub.unsubscribe(sub)
                self.books.pop(channel, None)
        return sorted(self.subs)

    def detach(self) -> None:
        """Stop every subscription: the session is closing."""
        for sub in self.subs.values():
            self.hub.unsubscribe(sub)
        self.subs.clear()

    async def pushes(self, items: list[tuple[str, Any]], push: Callable[[str, Any], Any]) -> list[Any]:
        """Inbox items encoded by `push`; book channels keep their seq gapless, re-snapshotting when they cannot."""
        out: list[Any] = []
        for topic, item in items:
            if topic == SNAP:
                book = self.books.get(item)
                if book is not None:
                    out.append(await self._snapshot(book, push))
            elif type(item) is BookView:
                book = self.books.get(topic)
                if book is None or book.seq is None or item.seq <= book.seq:
                    continue  # unsubscribed, or covered by the snapshot
                if item.prev_seq > book.seq:
                    out.append(await self._snapshot(book, push))
                    continue
                book.seq = item.seq
                out.append(push(topic, item))
            else:
                out.append(push(topic, item))
        return out

    async def _snapshot(self, book: _Book, push: Callable[[str, Any], Any]) -> Any:
        view = await self.routes.snapshot(book.symbol, book.depth)
        book.seq = view.seq
        return push(view.channel, view)
