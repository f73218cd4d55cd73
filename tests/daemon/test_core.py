"""Core: listeners see every committed batch once, in order, before any later query is answered."""

from decimal import Decimal
from typing import Any

from tradsys.daemon.core import Core
from tradsys.engine import DEFAULT_INSTRUMENTS, Venue, VenueConfig


class MemoryStore:
    def __init__(self) -> None:
        self.seq = 0

    def commit(self, batch: list, venue: Venue) -> int:
        self.seq += len(batch)
        return self.seq

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


def test_an_idle_engine_publishes_without_being_asked() -> None:
    core, seen = core_with_log(publish_idle=0.001, publish_max=60)
    try:
        core.execute([order(1)])
        for _ in range(500):
            if seen:
                break
            core._thread.join(0.01)
        assert seen == ["1"]
    finally:
        core.stop()
