"""Memory the daemon keeps per event stays at a fixed size however long it runs (bench/soak.py
measures the whole process; these pin the individual bounds)."""

from tradsys.daemon.records import _cached


def test_text_memo_follows_a_wandering_price_within_its_cap() -> None:
    computed: list[int] = []
    text = _cached(lambda n: computed.append(n) or str(n), cap=3)
    for n in range(10):
        assert text(n) == str(n)
    text(9)
    assert computed == list(range(10)), "the newest values stay memoised after the cap is reached"
    text(0)
    assert computed[-1] == 0, "old values are forgotten, so the memo holds at most `cap`"
