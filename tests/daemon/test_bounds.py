"""Memory the daemon keeps per event stays at a fixed size however long it runs (bench/soak.py
measures the whole process; these pin the individual bounds)."""

import sys

from tradsys.daemon.records import _cached
from tradsys.engine import OrderRejected, Venue, VenueConfig
from tradsys.engine.account import CLIENT_IDS
from tradsys.engine.commands import apply


def test_text_memo_follows_a_wandering_price_within_its_cap() -> None:
    computed: list[int] = []
    text = _cached(lambda n: computed.append(n) or str(n), cap=3)
    for n in range(10):
        assert text(n) == str(n)
    text(9)
    assert computed == list(range(10)), "the newest values stay memoised after the cap is reached"
    text(0)
    assert computed[-1] == 0, "old values are forgotten, so the memo holds at most `cap`"


def test_client_ids_are_remembered_up_to_the_cap() -> None:
    venue = Venue(config=VenueConfig(risk=False))

    def place(n: int, client_id: str) -> list:
        return apply(venue, {"op": "new", "id": f"o{n}", "account": "a", "symbol": "BTC-USD", "side": "buy",
                             "type": "limit", "tif": "IOC", "price": "100", "qty": "0.001", "client_id": client_id,
                             "ts": 1_000 + n})

    sent = 2 * CLIENT_IDS + 10
    for n in range(sent):
        place(n, f"c{n}")
    ids = venue.accounts["a"].client_ids
    assert CLIENT_IDS <= len(ids) <= 2 * CLIENT_IDS
    size = sys.getsizeof(ids._new) + sys.getsizeof(ids._old) + sum(sys.getsizeof(c) for c in ids)
    assert size < 3_000_000, "each trading account may hold this much: it must stay small"
    newest, oldest = place(-1, f"c{sent - CLIENT_IDS}"), place(-2, "c0")
    assert [type(e) for e in newest] == [OrderRejected] and newest[0].reason == "duplicate_client_id"
    assert not any(isinstance(e, OrderRejected) for e in oldest), "an id older than the cap is forgotten"
