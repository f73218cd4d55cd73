"""Check `tradsys watch SYMBOL --json` against the daemon's own book: never crossed, never stale.

    python bench/watch_check.py                                   # BTC-USD, 30 s, a daemon of its own
    python bench/watch_check.py ETH-USD --seconds 120 --address 127.0.0.1:50051 --token "$TOKEN"

Runs watch for `--seconds`, reads every JSON document it prints, and meanwhile asks GetBook for the
same symbol every `--poll` seconds. A document is a violation when its book is crossed (best bid at
or above best ask), its seq is below the previous document's, or it is stale: a GetBook answer at
the same seq had other levels (compared level for level at watch's depth), or a GetBook answer
with a later seq came more than `--max-lag` seconds before it. Without `--address` it starts a
daemon with the simulated market in a temporary home (token: that home's admin token); with one,
the token is `--token`, else $TRADSYS_TOKEN, else the admin token of $TRADSYS_HOME. Prints a
summary and exits 1 on any violation (or if watch ends early), else 0.
"""

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import start_daemon  # noqa: E402
from tradsys.cli.client import Client, Target  # noqa: E402
from tradsys.cli.output import to_dict  # noqa: E402
from tradsys.cli.watch_view import JSON_DEPTH  # noqa: E402
from tradsys.proto import marketdata_pb2 as md  # noqa: E402

Level = tuple[Decimal, Decimal, int]
"""price, qty, order count."""
KEPT_PROBLEMS = 20
"""Violations quoted in the summary; the counts cover all of them."""


@dataclass(frozen=True)
class Book:
    seq: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


def book_of(doc: dict[str, Any]) -> Book:
    """A watch --json document or a GetBook snapshot (as `to_dict` gives it): both have seq, bids, asks."""
    def side(levels: list[dict[str, Any]]) -> tuple[Level, ...]:
        return tuple((Decimal(x["price"]), Decimal(x["qty"]), int(x["order_count"])) for x in levels)
    return Book(int(doc["seq"]), side(doc["bids"]), side(doc["asks"]))


@dataclass
class Report:
    documents: int = 0
    compared: int = 0
    """Documents with a GetBook answer at the same seq."""
    crossed: int = 0
    backwards: int = 0
    wrong_levels: int = 0
    behind: int = 0
    max_lag: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def stale(self) -> int:
        return self.wrong_levels + self.behind

    @property
    def violations(self) -> int:
        return self.crossed + self.backwards + self.stale


class Checker:
    """Judges watch's documents against GetBook answers, each stamped with the time it arrived.

    Pure (no clock, no I/O): feed it `book` and `watch` in arrival order. Answers older than
    `window` seconds are forgotten, so memory stays bounded however long a run is; a lag beyond the
    window is still caught (some later answer is ahead too), only its size is then understated.
    """

    def __init__(self, max_lag: float, window: float = 60.0) -> None:
        self.max_lag = max_lag
        self.window = max(window, 2 * max_lag)
        self.report = Report()
        self._books: deque[tuple[float, Book]] = deque()
        self._seq: int | None = None

    def book(self, t: float, book: Book) -> None:
        self._books.append((t, book))
        while self._books[0][0] < t - self.window:
            self._books.popleft()

    def watch(self, t: float, doc: Book) -> None:
        r = self.report
        r.documents += 1
        if doc.bids and doc.asks and doc.bids[0][0] >= doc.asks[0][0]:
            r.crossed += 1
            self._problem(f"crossed at seq {doc.seq}: bid {doc.bids[0][0]} >= ask {doc.asks[0][0]}")
        if self._seq is not None and doc.seq < self._seq:
            r.backwards += 1
            self._problem(f"seq went backwards: {self._seq} -> {doc.seq}")
        self._seq = doc.seq
        same = next((b for _, b in reversed(self._books) if b.seq == doc.seq), None)
        if same is not None:
            r.compared += 1
            if (same.bids, same.asks) != (doc.bids, doc.asks):
                r.wrong_levels += 1
                self._problem(f"seq {doc.seq}: watch shows other levels than GetBook: {_diff(doc, same)}")
        ahead = next((s for s, b in self._books if b.seq > doc.seq), None)
        lag = 0.0 if ahead is None else max(0.0, t - ahead)
        r.max_lag = max(r.max_lag, lag)
        if lag > self.max_lag:
            r.behind += 1
            self._problem(f"seq {doc.seq} is {lag:.1f}s behind GetBook")

    def _problem(self, text: str) -> None:
        if len(self.report.problems) < KEPT_PROBLEMS:
            self.report.problems.append(text)


def _diff(watch: Book, book: Book) -> str:
    parts = []
    for name, mine, theirs in (("bids", watch.bids, book.bids), ("asks", watch.asks, book.asks)):
        extra = [f"{p}x{q}" for p, q, _ in sorted(set(mine) - set(theirs))]
        missing = [f"{p}x{q}" for p, q, _ in sorted(set(theirs) - set(mine))]
        if extra or missing:
            parts.append(f"{name} only in watch {extra}, only in GetBook {missing}")
    return "; ".join(parts)


def check(target: Target, symbol: str, seconds: float, max_lag: float, poll: float) -> tuple[Report, bool]:
    """Run watch against `target` for `seconds`; the report and whether watch ran to the end."""
    events: queue.Queue[tuple[float, str, Book | None]] = queue.Queue()
    stop = threading.Event()
    client = Client(target)

    def ask() -> None:
        request = md.GetBookRequest(symbol=symbol, depth=JSON_DEPTH)
        while not stop.wait(poll):
            try:
                reply = client.market.GetBook(request, metadata=client.metadata, timeout=5)
            except grpc.RpcError:
                continue
            events.put((time.monotonic(), "book", book_of(to_dict(reply.book))))

    token = target.bearer()
    watch = subprocess.Popen(
        [sys.executable, "-m", "tradsys", "--host", client.host, "--grpc-port", str(client.port), "watch", symbol, "--json"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **({"TRADSYS_TOKEN": token} if token else {})})

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            events.put((time.monotonic(), "watch", book_of(json.loads(line))))
        events.put((time.monotonic(), "end", None))

    checker = Checker(max_lag)
    for source in (ask, read):
        threading.Thread(target=source, daemon=True).start()
    deadline = time.monotonic() + seconds
    ended = False
    try:
        while not ended and time.monotonic() < deadline:
            try:
                t, kind, book = events.get(timeout=0.5)
            except queue.Empty:
                continue
            if book is None:
                ended = True
            elif kind == "book":
                checker.book(t, book)
            else:
                checker.watch(t, book)
    finally:
        stop.set()
        watch.send_signal(signal.SIGINT)
        try:
            watch.wait(20)
        except subprocess.TimeoutExpired:
            watch.kill()
        client.close()
    return checker.report, not ended


def summary(symbol: str, seconds: float, report: Report) -> str:
    r = report
    lines = [f"watch {symbol} for {seconds:g}s: {r.documents} documents ({r.compared} at a seq GetBook also answered), "
             f"{r.crossed} crossed, {r.backwards} seq backwards, {r.stale} stale ({r.wrong_levels} with other "
             f"levels than GetBook, {r.behind} behind), max lag {r.max_lag:.2f}s"]
    lines += [f"  {p}" for p in r.problems]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("symbol", nargs="?", default="BTC-USD")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--address", help="HOST:PORT of a running daemon's gRPC; none: start one")
    parser.add_argument("--token", default=os.environ.get("TRADSYS_TOKEN"))
    parser.add_argument("--max-lag", type=float, default=3.0, help="seconds watch's seq may stay behind GetBook's")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between GetBook calls")
    args = parser.parse_args()

    symbol = args.symbol.upper()
    if args.address is None:
        with tempfile.TemporaryDirectory(prefix="tradsys-watch-check-") as tmp:
            daemon = start_daemon(Path(tmp) / "home", "--seed", "5")
            try:
                target = Target(host="127.0.0.1", port=daemon.grpc_port, token=daemon.admin_token(), home=daemon.home)
                report, whole = check(target, symbol, args.seconds, args.max_lag, args.poll)
            finally:
                daemon.kill(signal.SIGTERM)
    else:
        host, _, port = args.address.rpartition(":")
        report, whole = check(Target(host=host, port=int(port), token=args.token), symbol, args.seconds, args.max_lag,
                              args.poll)
    print(summary(symbol, args.seconds, report))
    if not whole:
        print("watch ended before the time was up", file=sys.stderr)
    return 1 if report.violations or not whole else 0


if __name__ == "__main__":
    sys.exit(main())
