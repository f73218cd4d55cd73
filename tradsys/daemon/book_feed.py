"""The exact book feed: per symbol, one sequence of book versions that every snapshot and delta is cut from.

A `BookMirror` holds the levels of one symbol's book as last published, and its `seq`. It is kept
current after every committed batch that touched the symbol, whether anyone is subscribed or not,
so a snapshot (the mirror at seq S) and the deltas that follow it always compose to the venue's
book. Each new version is published on `book:SYM` with the whole book's changed levels, and on
`book:SYM:N`, for every depth N somebody follows, when its top N changed: the difference between
the top N levels before and after, so a level that leaves the top N is removed and one that enters
is added. Every delta names `prev_seq`, the version it applies to: seq - 1 on the whole book, the
last version that changed the top N on a top-N view. A client at version S applies a delta when
prev_seq <= S < seq; prev_seq > S means it missed one and must take a new snapshot.
"""

from bisect import bisect_left, insort
from dataclasses import dataclass

from tradsys.daemon.hub import Hub
from tradsys.engine import Venue
from tradsys.engine.book import Level as BookLevel
from tradsys.engine.commands import fmt
from tradsys.engine.instrument import Instrument

Level = tuple[str, str, int]
"""price, qty, order count; qty "0" removes the level."""
Raw = tuple[int, int, int]
"""price in ticks, qty in lots, order count."""
MAX_DEPTH = 500
"""The deepest top-N view a client may follow or ask for; 0 (the whole book) is always allowed."""


@dataclass(slots=True, frozen=True)
class BookView:
    """A snapshot, or the levels that changed from seq-1 to seq, of the whole book (depth 0) or its top `depth`."""

    symbol: str
    seq: int
    ts: int
    bids: list[Level]
    asks: list[Level]
    snapshot: bool
    depth: int = 0
    prev_seq: int = 0
    """A delta's base version (see the module's docstring); a snapshot's is its own seq."""

    @property
    def channel(self) -> str:
        return book_topic(self.symbol, self.depth)


def book_topic(symbol: str, depth: int) -> str:
    """The hub topic (and WebSocket channel) of a book view: `book:SYM` whole, `book:SYM:N` top N."""
    return f"book:{symbol}:{depth}" if depth else f"book:{symbol}"


class _Side:
    """One side's levels as last published, and their prices best first (as sort keys)."""

    __slots__ = ("levels", "keys", "sign")

    def __init__(self, sign: int) -> None:
        self.levels: dict[int, tuple[int, int]] = {}
        self.keys: list[int] = []
        """`sign * price`, ascending: best first for both sides (bids are negated)."""
        self.sign = sign

    def top(self, n: int) -> list[Raw]:
        levels, sign = self.levels, self.sign
        keys = self.keys[:n] if n else self.keys
        return [(sign * k, *levels[sign * k]) for k in keys]

    def sync(self, book_levels: dict[int, BookLevel]) -> list[Raw]:
        """Become `book_levels`; the levels that changed, qty 0 for the ones gone."""
        old = self.levels
        new = {p: (lvl.qty, len(lvl.live)) for p, lvl in book_levels.items()}
        changed = [(p, q, n) for p, (q, n) in new.items() if old.get(p) != (q, n)]
        gone = [p for p in old if p not in new]
        if not changed and not gone:
            return []
        keys, sign = self.keys, self.sign
        for p in gone:
            del keys[bisect_left(keys, sign * p)]
        for p, _, _ in changed:
            if p not in old:
                insort(keys, sign * p)
        self.levels = new
        return changed + [(p, 0, 0) for p in gone]


class BookMirror:
    """One symbol's published book: its levels and the seq of the version they are."""

    __slots__ = ("inst", "seq", "bids", "asks")

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.seq = 0
        self.bids = _Side(-1)
        self.asks = _Side(1)

    def levels(self, raw: list[Raw]) -> list[Level]:
        inst = self.inst
        return [(fmt(inst.price(p)), fmt(inst.qty(q)), n) for p, q, n in raw]

    def view(self, depth: int, ts: int) -> BookView:
        return BookView(self.inst.symbol, self.seq, ts, self.levels(self.bids.top(depth)),
                        self.levels(self.asks.top(depth)), snapshot=True, depth=depth, prev_seq=self.seq)


def _top_delta(before: list[Raw], after: list[Raw]) -> list[Raw]:
    """Levels of `after` that differ from `before`, and removals of prices that left."""
    old = set(before)
    prices = {p for p, _, _ in after}
    return [lvl for lvl in after if lvl not in old] + [(p, 0, 0) for p, _, _ in before if p not in prices]


class BookFeed:
    """Keeps a `BookMirror` per symbol on the engine thread and publishes each new version."""

    def __init__(self, venue: Venue, hub: Hub) -> None:
        self.hub = hub
        self.mirrors = {s: BookMirror(inst) for s, inst in venue.instruments.items()}
        self._tops: dict[str, dict[int, int]] = {s: {} for s in venue.instruments}
        """Per symbol, the top-N views followed: N -> the last seq that changed the top N. Engine
        thread only: a view starts with a snapshot of it (after its subscriber attached) and is
        dropped once nobody follows it."""

    def update(self, venue: Venue, symbol: str, now: int) -> None:
        """Bring the symbol's mirror to the venue's book; publish the new version if it changed."""
        mirror = self.mirrors[symbol]
        hub = self.hub
        tops = self._tops[symbol]
        for n in [n for n in tops if not hub.wants(book_topic(symbol, n))]:
            del tops[n]
        before = [(n, mirror.bids.top(n), mirror.asks.top(n)) for n in tops]
        book = venue.books[symbol]
        bids = mirror.bids.sync(book.bids)
        asks = mirror.asks.sync(book.asks)
        if not bids and not asks:
            return
        mirror.seq += 1
        seq = mirror.seq
        if hub.wants(book_topic(symbol, 0)):
            hub.publish(book_topic(symbol, 0), BookView(
                symbol, seq, now, mirror.levels(bids), mirror.levels(asks), snapshot=False, prev_seq=seq - 1))
        for n, old_bids, old_asks in before:
            top_bids = _top_delta(old_bids, mirror.bids.top(n))
            top_asks = _top_delta(old_asks, mirror.asks.top(n))
            if top_bids or top_asks:
                hub.publish(book_topic(symbol, n), BookView(
                    symbol, seq, now, mirror.levels(top_bids), mirror.levels(top_asks), snapshot=False, depth=n,
                    prev_seq=tops[n]))
                tops[n] = seq

    def snapshot(self, venue: Venue, symbol: str, depth: int) -> BookView:
        """The book at the seq it is, on the engine thread (`Core.query`): the mirror is first
        brought to the venue's book, so it is that book even if a change reached no batch. A
        top-N snapshot starts following that view, for the subscriber that attached before it."""
        self.update(venue, symbol, venue.now)
        mirror = self.mirrors[symbol]
        if depth:
            self._tops[symbol].setdefault(depth, mirror.seq)
        return mirror.view(depth, venue.now)
