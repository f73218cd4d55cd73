"""Core: listeners see every committed batch once, in order, before any later query is answered."""

import threading
from concurrent.futures import Future
from decimal import Decimal
from typing import Any

import pytest

from tradsys.daemon.core import Core, Overloaded, StorageFault
from tradsys.engine import DEFAULT_INSTRUMENTS, Venue, VenueConfig


class MemoryStore:
    def __init__(self) -> None:
        self.seq = 0

    def prepare(self, batch: list, venue: Venue) -> list:
        return batch

    def write(self, rows: list) -> int:
        self.seq += len(rows)
        return self.seq

    def discard(self) -> None:
        pass

    def snapshot(self, seq: int, venue: Venue) -> None:
        pass


def order(i: int) -> dict[str, Any]:
    return {"op": "new", "account": "a", "symbol": "BTC-USD", "side": "buy", "type": "limit",
            "price": str(100 + i % 7), "qty": "0.01"}


def core_with_log(**kwargs: Any) -> tuple[Core, list[str]]:
    venue = Venue(DEFAULT_INSTRUMENTS, VenueConfig(initial_balances={"USD": Decimal("1000000")}))
    core = Core(venue, MemoryStore(), **kwargs)
    seen: list[str] = []
    core.listeners.append(lambda batch, _venue: seen.extend(cmd["id"] for cmd, _ in batch))
    core.start()
    return core, seen


def test_a_query_sees_every_earlier_batch_published() -> None:
    core, seen = core_with_log(publish_idle=60, publish_max=60)
    try:
        for future in [core.submit([order(i)]) for i in range(40)]:
            future.result(5)
        assert core.query(lambda _venue: list(seen)) == [str(i) for i in range(1, 41)]
    finally:
        core.stop()


def test_batches_left_unpublished_are_published_on_stop() -> None:
    core, seen = core_with_log(publish_idle=60, publish_max=60)
    core.execute([order(1), order(2)])
    core.execute([order(3)])
    core.stop()
    assert seen == ["1", "2", "3"]


def published(core: Core, seen: list[str]) -> list[str]:
    """What the listener has seen once it has seen anything (or after 5 s)."""
    for _ in range(500):
        if seen:
            break
        core._thread.join(0.01)
    return seen


def test_an_idle_engine_publishes_without_being_asked() -> None:
    core, seen = core_with_log(publish_idle=0.001, publish_max=60)
    try:
        core.execute([order(1)])
        assert published(core, seen) == ["1"]
    finally:
        core.stop()


class GatedStore(MemoryStore):
    """The first write waits for the test (and then fails if told to); records what was prepared
    while a write was under way."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.prepared_while_writing = threading.Event()
        self.written: list[str] = []

    def prepare(self, batch: list, venue: Venue) -> list:
        if self.writing.is_set():
            self.prepared_while_writing.set()
        return batch

    def write(self, rows: list) -> int:
        if not self.written and not self.gate.is_set():
            self.writing.set()
            assert self.gate.wait(10)
            self.writing.clear()
            if self.fail:
                raise OSError("disk I/O error")
        self.written += [cmd["id"] for cmd, _ in rows]
        return super().write(rows)


def pipelined(store: GatedStore) -> tuple[Core, Future, list[Future]]:
    """Job A, whose render queues job B: A goes to the writer, and B is applied meanwhile."""
    venue = Venue(DEFAULT_INSTRUMENTS, VenueConfig(initial_balances={"USD": Decimal("1000000")}))
    fresh = lambda: Venue(DEFAULT_INSTRUMENTS, VenueConfig(initial_balances={"USD": Decimal("1000000")}))  # noqa: E731
    core = Core(venue, store, restore=fresh, probe_seconds=3600)
    core.start()
    second: list[Future] = []

    def render(commands: list, out: list, _venue: Venue) -> list:
        second.append(core.submit([order(2)]))
        return out

    first = core.submit([order(1)], render)
    assert store.prepared_while_writing.wait(10), "B is applied while A is being written"
    return core, first, second


def test_acks_wait_for_the_write_while_the_next_batch_is_applied() -> None:
    store = GatedStore()
    core, first, (second,) = pipelined(store)
    try:
        assert not first.done() and not second.done(), "nothing is acknowledged before it is durable"
        store.gate.set()
        first.result(5)
        second.result(5)
        assert store.written == ["1", "2"], "written in the order applied"
        assert len(core.query(lambda venue: venue.orders)) == 2
    finally:
        core.stop()


def test_a_failed_write_refuses_the_batch_applied_on_top_of_it() -> None:
    store = GatedStore(fail=True)
    core, first, (second,) = pipelined(store)
    try:
        store.gate.set()
        for future in (first, second):
            with pytest.raises(StorageFault):
                future.result(5)
        assert core.storage.fault is not None and "disk I/O error" in core.storage.fault
        assert core.query(lambda venue: len(venue.orders)) == 0, "the venue is back at its durable state"
        assert store.written == []
    finally:
        core.stop()


def thread_of(_commands: list, _out: list, _venue: Venue) -> str:
    return threading.current_thread().name


def test_an_idle_engine_lets_the_caller_run_its_command_and_a_busy_one_queues_it() -> None:
    core, _seen = core_with_log()
    try:
        assert core.execute([order(1)], thread_of) == threading.current_thread().name
        busy, release = threading.Event(), threading.Event()

        def hold(_commands: list, out: list, _venue: Venue) -> list:
            busy.set()
            assert release.wait(10)
            return out

        held = core.submit([order(2)], hold)
        assert busy.wait(10)
        answer: list[str] = []
        caller = threading.Thread(target=lambda: answer.append(core.execute([order(3)], thread_of)), name="caller")
        caller.start()
        caller.join(0.2)
        assert caller.is_alive(), "the caller waits for the engine's cycle under way"
        release.set()
        held.result(5)
        caller.join(5)
        assert answer == ["tradsys-engine"]
        assert core.query(lambda venue: sorted(venue.orders)) == ["1", "2", "3"]
    finally:
        core.stop()


def test_a_command_its_caller_ran_is_published_by_the_sleeping_engine_thread() -> None:
    core, seen = core_with_log(tick_seconds=3600, publish_idle=0.001, publish_max=60)
    try:
        core._thread.join(0.1)  # the engine thread's first tick is behind it: it sleeps for an hour
        core.execute([order(1)])
        assert published(core, seen) == ["1"]
    finally:
        core.stop()


def test_a_full_queue_refuses_jobs_until_the_engine_takes_what_it_holds() -> None:
    venue = Venue(DEFAULT_INSTRUMENTS, VenueConfig(initial_balances={"USD": Decimal("1000000")}))
    core = Core(venue, MemoryStore(), max_queued=10)  # not started yet: nothing is taken
    queued = [core.submit([order(3 * j + i) for i in range(3)]) for j in range(3)]
    with pytest.raises(Overloaded, match="9 commands queued"):
        core.submit([order(100), order(101)])
    core.start()
    try:
        for future in queued:
            assert len(future.result(10)) == 3
        assert len(core.submit([order(i) for i in range(10)]).result(10)) == 10, "room again once taken"
    finally:
        core.stop()
