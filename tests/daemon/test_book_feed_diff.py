"""Differential test of the book feed: subscribers rebuild the book from a snapshot and its updates
and are compared with the venue's own book, at every step, over many random steps.

A real daemon runs its simulated market; a seeded random client places, amends and cancels orders
around the touch of every symbol. On each of the three transports (gRPC `StreamBook`, `/ws` JSON,
`/ws/v2` protobuf) subscribers follow every symbol at depths 0 (the whole book), 1 and 10, and
leave and rejoin now and then (a new snapshot each time). Every update must continue its stream's
seq, leave the rebuilt book uncrossed and within its depth. Meanwhile `GetBook` is polled: at each
seq that both a subscriber and a `GetBook` saw, the subscriber's book must equal the top levels of
that `GetBook`, level for level.
"""

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from websockets.asyncio.client import connect

from tests.conftest import DaemonProcess, start_daemon
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc
from tradsys.proto import ws_pb2

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
DEPTHS = (0, 1, 10)
TARGET_UPDATES = 50_000
DEADLINE_S = 300.0
"""A bound on the run, not a speed claim: the run ends as soon as TARGET_UPDATES arrived."""
REJOIN_EVERY = 700
"""Updates after which a subscriber leaves and subscribes again."""

Levels = tuple[tuple[str, str, int], ...]
Book = tuple[Levels, Levels]


def channel(symbol: str, depth: int) -> str:
    return f"book:{symbol}:{depth}" if depth else f"book:{symbol}"


class Rebuilt:
    """One subscriber's copy of one book: a snapshot and the updates applied to it, checked at each step."""

    def __init__(self, name: str, symbol: str, depth: int) -> None:
        self.name, self.symbol, self.depth = name, symbol, depth
        self.bids: dict[Decimal, tuple[str, str, int]] = {}
        self.asks: dict[Decimal, tuple[str, str, int]] = {}
        self.seq: int | None = None
        self.rejoining = False
        """Left and subscribed again: updates sent before the leave may still arrive until the new snapshot."""
        self.updates = 0
        self.snapshots = 0
        self.history: dict[int, int] = {}
        """seq -> hash of the rebuilt book at that seq."""
        self.kept: dict[int, Book] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def snapshot(self, seq: int, bids: Iterable[tuple[str, str, int]], asks: Iterable[tuple[str, str, int]]) -> None:
        with self.lock:
            self.bids = {Decimal(p): (p, q, n) for p, q, n in bids}
            self.asks = {Decimal(p): (p, q, n) for p, q, n in asks}
            self.seq = seq
            self.rejoining = False
            self.snapshots += 1
            self._check("snapshot")

    def update(self, seq: int, prev_seq: int, bids: Iterable[tuple[str, str, int]],
               asks: Iterable[tuple[str, str, int]]) -> None:
        with self.lock:
            if self.seq is None:
                if self.rejoining:
                    return
                self.errors.append(f"{self.name}: update {seq} before any snapshot")
                return
            if seq <= self.seq:
                return  # covered by the snapshot
            if prev_seq > self.seq or (self.depth == 0 and seq != self.seq + 1):
                self.errors.append(f"{self.name}: at seq {self.seq}, an update from {prev_seq} to {seq}")
            current = hash(self.book())
            for unchanged in range(self.seq + 1, min(seq, self.seq + 1000)):
                self.history[unchanged] = current  # a top-N view sends nothing while its top N stays
            for side, levels in ((self.bids, bids), (self.asks, asks)):
                for p, q, n in levels:
                    if Decimal(q) == 0:
                        side.pop(Decimal(p), None)
                    else:
                        side[Decimal(p)] = (p, q, n)
            self.seq = seq
            self.updates += 1
            self._check(f"update {seq}")

    def rejoin(self) -> None:
        with self.lock:
            self.seq = None
            self.rejoining = True

    def _check(self, what: str) -> None:
        if self.bids and self.asks and max(self.bids) >= min(self.asks):
            self.errors.append(f"{self.name}: crossed after {what}: bid {max(self.bids)} >= ask {min(self.asks)}")
        if self.depth and (len(self.bids) > self.depth or len(self.asks) > self.depth):
            self.errors.append(f"{self.name}: {len(self.bids)}x{len(self.asks)} levels on a depth-{self.depth} view")
        assert self.seq is not None
        book = self.book()
        self.history[self.seq] = hash(book)
        if len(self.kept) < 4000:
            self.kept[self.seq] = book

    def book(self) -> Book:
        return (tuple(self.bids[p] for p in sorted(self.bids, reverse=True)),
                tuple(self.asks[p] for p in sorted(self.asks)))


def top(book: Book, depth: int) -> Book:
    return (book[0][:depth], book[1][:depth]) if depth else book


def levels(msg_levels: Iterable[md.BookLevel]) -> list[tuple[str, str, int]]:
    return [(lvl.price, lvl.qty, lvl.order_count) for lvl in msg_levels]


# -- subscribers ----------------------------------------------------------------------------------


def follow_grpc(d: DaemonProcess, books: list[Rebuilt], stop: threading.Event) -> None:
    """One StreamBook per book; each stream is reopened after REJOIN_EVERY updates."""
    def run(book: Rebuilt) -> None:
        with d.channel() as ch:
            stub = md_grpc.MarketDataServiceStub(ch)
            while not stop.is_set():
                call = stub.StreamBook(md.StreamBookRequest(symbol=book.symbol, depth=book.depth),
                                       metadata=d.metadata())
                start = book.updates
                try:
                    for event in call:
                        if event.HasField("snapshot"):
                            s = event.snapshot
                            book.snapshot(s.seq, levels(s.bids), levels(s.asks))
                        else:
                            u = event.update
                            book.update(u.seq, u.prev_seq, levels(u.bids), levels(u.asks))
                        if stop.is_set() or book.updates - start >= REJOIN_EVERY:
                            break
                except grpc.RpcError as exc:
                    if not stop.is_set():
                        book.errors.append(f"{book.name}: stream failed: {exc.code()} {exc.details()}")
                        return
                finally:
                    call.cancel()

    threads = [threading.Thread(target=run, args=(b,), daemon=True) for b in books]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


async def follow_ws(d: DaemonProcess, proto: bool, books: dict[str, Rebuilt], stop: threading.Event) -> None:
    """One connection following every book channel; each symbol's channels are left and
    subscribed again after REJOIN_EVERY updates of its whole-book channel."""
    path = "/ws/v2" if proto else "/ws"
    async with connect(f"ws://{d.http}{path}?token={d.admin_token()}", max_size=None) as ws:
        ids = iter(range(1, 1 << 30))

        async def send(kind: str, channels: list[str]) -> None:
            if proto:
                env = ws_pb2.Envelope(id=next(ids), type=kind)
                getattr(env, kind).channels.extend(channels)
                await ws.send(env.SerializeToString())
            else:
                await ws.send(json.dumps({"type": kind, "id": next(ids), "channels": channels}))

        def items(frame: Any) -> Iterator[tuple[str, str, int, int, list[Any], list[Any]]]:
            """(channel, type, seq, prev_seq, bids, asks) of each book push in a frame."""
            if proto:
                env = ws_pb2.Envelope.FromString(frame)
                for e in env.batch.items if env.type == "batch" else [env]:
                    if e.type in ("book_snapshot", "book_update"):
                        body = getattr(e, e.type)
                        prev = body.seq if e.type == "book_snapshot" else body.prev_seq
                        yield e.channel, e.type, body.seq, prev, levels(body.bids), levels(body.asks)
                    elif e.type == "error":
                        raise AssertionError(f"error from {path}: {e.error.message}")
                return
            msg = json.loads(frame)
            for m in msg["items"] if msg["type"] == "batch" else [msg]:
                if m["type"] in ("book_snapshot", "book_update"):
                    data = m["data"]
                    yield m["channel"], m["type"], data["seq"], data["prev_seq"], \
                        [tuple(x) for x in data["bids"]], [tuple(x) for x in data["asks"]]
                elif m["type"] == "error":
                    raise AssertionError(f"error from {path}: {m['error']}")

        await send("subscribe", list(books))
        rejoin = {s: REJOIN_EVERY for s in SYMBOLS}
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            for name, kind, seq, prev_seq, bids, asks in items(frame):
                book = books[name]
                if kind == "book_snapshot":
                    book.snapshot(seq, bids, asks)
                else:
                    book.update(seq, prev_seq, bids, asks)
                if book.depth == 0 and book.updates >= rejoin[book.symbol]:
                    rejoin[book.symbol] += REJOIN_EVERY
                    mine = [c for c, b in books.items() if b.symbol == book.symbol]
                    await send("unsubscribe", mine)
                    for c in mine:
                        books[c].rejoin()
                    await send("subscribe", mine)


# -- the venue's side -----------------------------------------------------------------------------


def trade_randomly(d: DaemonProcess, stop: threading.Event, seed: int) -> Counter[str]:
    """Place, amend and cancel orders around the touch of each symbol until `stop`."""
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    with d.channel() as ch:
        orders, market = pb_grpc.OrderServiceStub(ch), md_grpc.MarketDataServiceStub(ch)
        ticks = {i.symbol: Decimal(i.tick_size) for i in market.ListInstruments(
            md.ListInstrumentsRequest(), metadata=d.metadata()).instruments}
        open_ids: dict[str, list[str]] = {s: [] for s in SYMBOLS}
        touch: dict[str, tuple[Decimal, Decimal]] = {}
        step = 0
        while not stop.is_set():
            symbol = rng.choice(SYMBOLS)
            if step % 20 == 0 or symbol not in touch:
                book = market.GetBook(md.GetBookRequest(symbol=symbol, depth=1), metadata=d.metadata()).book
                if not book.bids or not book.asks:
                    continue
                touch[symbol] = (Decimal(book.bids[0].price), Decimal(book.asks[0].price))
            step += 1
            bid, ask = touch[symbol]
            tick = ticks[symbol]
            qty = {"BTC-USD": "0.01", "ETH-USD": "0.1", "SOL-USD": "2"}[symbol]
            mine = open_ids[symbol]
            roll = rng.random() if len(mine) <= 30 else 1.0
            try:
                if roll < 0.55 or not mine:
                    buy = rng.random() < 0.5
                    # mostly at or just behind the touch; some cross it and trade
                    offset = tick * rng.randint(-2, 6)
                    price = bid - offset if buy else ask + offset
                    r = orders.PlaceOrder(pb.PlaceOrderRequest(
                        account="diff", symbol=symbol, side=common.SIDE_BUY if buy else common.SIDE_SELL,
                        type=common.ORDER_TYPE_LIMIT, tif=common.TIME_IN_FORCE_GTC, price=str(price), qty=qty,
                    ), metadata=d.metadata())
                    if r.order.status in (common.ORDER_STATUS_NEW, common.ORDER_STATUS_PARTIALLY_FILLED):
                        mine.append(r.order.order_id)
                    outcomes["placed"] += 1
                elif roll < 0.8:
                    oid = rng.choice(mine)
                    buy_side = rng.random() < 0.5
                    price = (bid - tick * rng.randint(0, 4)) if buy_side else (ask + tick * rng.randint(0, 4))
                    try:
                        orders.AmendOrder(pb.AmendOrderRequest(order_id=oid, new_price=str(price)) if rng.random() < 0.6
                                          else pb.AmendOrderRequest(order_id=oid, new_open_qty=qty), metadata=d.metadata())
                    except grpc.RpcError:
                        mine.remove(oid)  # filled meanwhile
                        raise
                    outcomes["amended"] += 1
                else:
                    oid = mine.pop(rng.randrange(len(mine)) if len(mine) <= 30 else 0)
                    orders.CancelOrder(pb.CancelOrderRequest(order_id=oid), metadata=d.metadata())
                    outcomes["cancelled"] += 1
            except grpc.RpcError as exc:
                outcomes[f"refused {exc.code().name}"] += 1
    return outcomes


def poll_truth(d: DaemonProcess, stop: threading.Event, truth: dict[str, dict[int, Book]]) -> None:
    """GetBook of the whole book of each symbol, over and over: the venue's book at a seq."""
    with d.channel() as ch:
        market = md_grpc.MarketDataServiceStub(ch)
        while not stop.is_set():
            for symbol in SYMBOLS:
                b = market.GetBook(md.GetBookRequest(symbol=symbol, depth=0), metadata=d.metadata()).book
                truth[symbol][b.seq] = (tuple(levels(b.bids)), tuple(levels(b.asks)))


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home: Path = tmp_path_factory.mktemp("diffhome")
    proc = start_daemon(home, "--seed", "5")
    yield proc
    if proc.proc.poll() is None:
        proc.kill(15)


def test_book_subscribers_on_every_transport_and_depth_equal_the_venue(venue: DaemonProcess) -> None:
    stop = threading.Event()
    grpc_books = [Rebuilt(f"grpc {channel(s, n)}", s, n) for s in SYMBOLS for n in DEPTHS]
    ws_books = {proto: {channel(s, n): Rebuilt(f"{'ws/v2' if proto else 'ws'} {channel(s, n)}", s, n)
                        for s in SYMBOLS for n in DEPTHS} for proto in (False, True)}
    every = grpc_books + [b for books in ws_books.values() for b in books.values()]
    truth: dict[str, dict[int, Book]] = {s: {} for s in SYMBOLS}
    outcomes: Counter[str] = Counter()
    failures: list[BaseException] = []

    def guarded(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # reported below, with the subscribers' own errors
            failures.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=guarded, args=(follow_grpc, venue, grpc_books, stop), daemon=True),
        *(threading.Thread(target=guarded, args=(asyncio.run, follow_ws(venue, proto, books, stop)), daemon=True)
          for proto, books in ws_books.items()),
        threading.Thread(target=guarded, args=(lambda: outcomes.update(trade_randomly(venue, stop, 2024)),),
                         daemon=True),
        threading.Thread(target=guarded, args=(poll_truth, venue, stop, truth), daemon=True),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + DEADLINE_S
    while (not stop.is_set() and time.monotonic() < deadline
           and sum(b.updates for b in every) < TARGET_UPDATES and not any(b.errors for b in every)):
        stop.wait(0.2)
    stop.set()
    for t in threads:
        t.join(30)

    assert not failures, failures
    errors = [e for b in every for e in b.errors]
    assert not errors, f"{len(errors)} violations, the first: {errors[:5]}"
    total = sum(b.updates for b in every)
    assert total >= TARGET_UPDATES, f"only {total} updates within {DEADLINE_S}s (client: {dict(outcomes)})"
    assert outcomes["placed"] > 500 and outcomes["amended"] > 100 and outcomes["cancelled"] > 100, dict(outcomes)

    compared = Counter[str]()
    for book in every:
        for seq, venue_book in truth[book.symbol].items():
            mine = book.history.get(seq)
            if mine is None:
                continue
            expected = top(venue_book, book.depth)
            if mine != hash(expected):
                got = book.kept.get(seq)
                raise AssertionError(f"{book.name} at seq {seq}: rebuilt {got} but the venue had {expected}")
            compared[book.name.split()[0]] += 1
    # every transport was compared with the venue many times
    assert set(compared) == {"grpc", "ws", "ws/v2"} and min(compared.values()) >= 100, compared
    assert all(b.snapshots >= 2 for b in every), "every subscriber left and rejoined at least once"
    print(f"\n{total} updates, compared with GetBook {dict(compared)}, client {dict(outcomes)}")
