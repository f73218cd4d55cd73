"""The JSON command format: parsing at the edge, output dicts, admin ops, limits files, replay."""

import json
from decimal import Decimal

import pytest

from tradsys.engine import Venue, VenueConfig
from tradsys.engine.commands import BadCommand, apply, event_dict, load_limits, parse_ts, resting_dicts

from helpers import BTC, DAY, ETH, SECOND, SOL


def run(venue: Venue, *cmds: dict) -> list[dict]:
    out: list[dict] = []
    for cmd in cmds:
        out += [event_dict(venue, e) for e in apply(venue, cmd)]
    return out


def new(oid: str, side: str, qty: str, price: str | None = None, **kw) -> dict:
    cmd = {"op": "new", "id": oid, "account": kw.pop("account", "a1"), "symbol": kw.pop("symbol", BTC),
           "side": side, "type": kw.pop("type", "limit" if price is not None else "market"), "qty": qty}
    if price is not None:
        cmd["price"] = price
    return cmd | kw


def test_documented_example_rests() -> None:
    v = Venue()
    cmd = {"op": "new", "id": "o1", "account": "a1", "symbol": "BTC-USD", "side": "buy", "type": "limit",
           "price": "100.01", "qty": "0.5", "tif": "GTC"}
    assert run(v, cmd) == [{"event": "accepted", "id": "o1"}]
    assert resting_dicts(v) == [
        {"event": "resting", "id": "o1", "symbol": "BTC-USD", "side": "buy", "price": "100.01", "qty": "0.5"},
    ]


def test_a_session() -> None:
    v = Venue()
    out = run(
        v,
        new("s1", "sell", "0.5", "100.02", account="a1", tif="GTC", ts=1),
        new("s2", "sell", "0.3", "100.01", account="a2", ts=2),
        new("b1", "buy", "0.6", "100.02", account="a3", ts=3),
        new("b2", "buy", "1", "99.5", account="a3", ts=4),
        {"op": "amend", "id": "s1", "qty": "0.1", "ts": 5},
        {"op": "cancel", "id": "s2", "ts": 6},
        new("b3", "buy", "2", "99.50", account="a4", tif="GTD", expire_ts=100, ts=7),
        {"op": "advance", "ts": 100},
    )
    assert out == [
        {"event": "accepted", "id": "s1"},
        {"event": "accepted", "id": "s2"},
        {"event": "accepted", "id": "b1"},
        {"event": "filled", "symbol": "BTC-USD", "taker": "b1", "maker": "s2", "price": "100.01", "qty": "0.3"},
        {"event": "filled", "symbol": "BTC-USD", "taker": "b1", "maker": "s1", "price": "100.02", "qty": "0.3"},
        {"event": "accepted", "id": "b2"},
        {"event": "amended", "id": "s1"},
        {"event": "rejected", "id": "s2", "reason": "order_closed", "op": "cancel"},
        {"event": "accepted", "id": "b3"},
        {"event": "expired", "id": "b3"},
    ]
    assert resting_dicts(v) == [
        {"event": "resting", "id": "b2", "symbol": "BTC-USD", "side": "buy", "price": "99.5", "qty": "1"},
        {"event": "resting", "id": "s1", "symbol": "BTC-USD", "side": "sell", "price": "100.02", "qty": "0.1"},
    ]


def test_resting_dicts_order_symbols_then_bids_then_asks_best_first() -> None:
    v = Venue()
    run(
        v,
        new("e-ask", "sell", "1", "2000", symbol=ETH),
        new("b-bid-low", "buy", "1", "98"),
        new("b-ask-high", "sell", "1", "103"),
        new("b-bid-high", "buy", "1", "99"),
        new("b-ask-low", "sell", "1", "102"),
        new("b-bid-high-2", "buy", "2", "99.00"),
        new("s-bid", "buy", "1.5", "20.125", symbol=SOL),
    )
    rows = [(r["id"], r["symbol"], r["side"], r["price"], r["qty"]) for r in resting_dicts(v)]
    assert rows == [
        ("b-bid-high", BTC, "buy", "99", "1"),
        ("b-bid-high-2", BTC, "buy", "99", "2"),
        ("b-bid-low", BTC, "buy", "98", "1"),
        ("b-ask-low", BTC, "sell", "102", "1"),
        ("b-ask-high", BTC, "sell", "103", "1"),
        ("e-ask", ETH, "sell", "2000", "1"),
        ("s-bid", SOL, "buy", "20.125", "1.5"),
    ]


def test_resting_qty_is_the_open_quantity() -> None:
    v = Venue()
    run(v, new("m", "sell", "1", "100"), new("t", "buy", "0.25", "100", account="a2"))
    assert [r["qty"] for r in resting_dicts(v)] == ["0.75"]


def test_market_order_and_cancelled_remainder() -> None:
    v = Venue()
    out = run(v, new("m", "sell", "0.5", "100.01"), new("t", "buy", "1", account="a2"))
    assert out[1:] == [
        {"event": "accepted", "id": "t"},
        {"event": "filled", "symbol": "BTC-USD", "taker": "t", "maker": "m", "price": "100.01", "qty": "0.5"},
        {"event": "cancelled", "id": "t"},
    ]


def test_stop_triggered_event() -> None:
    v = Venue()
    out = run(
        v,
        new("m1", "sell", "0.1", "100", account="m"),
        new("m2", "sell", "1", "101", account="m"),
        new("t", "buy", "0.1", "100", account="t"),
        new("st", "buy", "1", "102", type="stop_limit", stop_price="99"),
    )
    assert out[-3:] == [
        {"event": "accepted", "id": "st"},
        {"event": "triggered", "id": "st"},
        {"event": "filled", "symbol": "BTC-USD", "taker": "st", "maker": "m2", "price": "101", "qty": "1"},
    ]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"op": "new", "price": "100.001"}, "price_precision"),
        ({"op": "new", "qty": "0.0001"}, "qty_precision"),
        ({"op": "new", "price": "0"}, "invalid_price"),
        ({"op": "new", "price": 100.5}, "invalid_price"),
        ({"op": "new", "qty": "0"}, "invalid_qty"),
        ({"op": "new", "qty": None}, "invalid_qty"),
        ({"op": "new", "symbol": "DOGE-USD"}, "unknown_symbol"),
        ({"op": "new", "side": "long"}, "invalid_side"),
        ({"op": "new", "side": None}, "invalid_side"),
        ({"op": "new", "type": "iceberg"}, "invalid_type"),
        ({"op": "new", "tif": "GTX"}, "invalid_tif"),
    ],
)
def test_values_refused_at_the_edge_become_rejected_events(changes: dict, reason: str) -> None:
    v = Venue()
    cmd = new("o", "buy", "1", "100") | changes
    assert run(v, cmd) == [{"event": "rejected", "id": "o", "reason": reason}]
    assert v.orders == {}


def test_upper_case_side_and_type_and_integer_price() -> None:
    v = Venue()
    assert run(v, new("o", "BUY", "1", 100, type="LIMIT")) == [{"event": "accepted", "id": "o"}]
    assert v.orders["o"].price == 10000


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        "new",
        {"op": "replace", "id": "o"},
        {"id": "o"},
        {"op": "new", "account": "a1", "symbol": BTC, "side": "buy", "qty": "1", "price": "100"},  # no id
        {"op": "new", "id": "", "account": "a1", "symbol": BTC, "side": "buy", "qty": "1", "price": "100"},
        {"op": "new", "id": 5, "account": "a1", "symbol": BTC, "side": "buy", "qty": "1", "price": "100"},
        {"op": "new", "id": "o", "symbol": BTC, "side": "buy", "qty": "1", "price": "100"},  # no account
        {"op": "new", "id": "o", "account": "a1", "side": "buy", "qty": "1", "price": "100"},  # no symbol
        {"op": "new", "id": "o", "account": "a1", "symbol": BTC, "side": "buy", "qty": "1", "price": "100", "post_only": "yes"},
        {"op": "new", "id": "o", "account": "a1", "symbol": BTC, "side": "buy", "qty": "1", "price": "100", "ts": -1},
        {"op": "new", "id": "o", "account": "a1", "symbol": BTC, "side": "buy", "qty": "1", "price": "100", "ts": "yesterday"},
        {"op": "cancel"},
        {"op": "amend"},
    ],
)
def test_bad_commands_raise(cmd: object) -> None:
    with pytest.raises(BadCommand):
        apply(Venue(), cmd)


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        (None, 0),
        (0, 0),
        (123, 123),
        ("1970-01-02T00:00:00Z", DAY),
        ("1970-01-02T00:00:00", DAY),
        ("1970-01-02T01:00:00+01:00", DAY),
        ("1970-01-01T00:00:01.5Z", SECOND + SECOND // 2),
    ],
)
def test_parse_ts(value: object, ns: int) -> None:
    assert parse_ts(value) == ns


def test_iso_timestamps_drive_the_clock_and_expiry() -> None:
    v = Venue()
    out = run(
        v,
        new("g", "buy", "1", "100", tif="GTD", expire_ts="1970-01-02T00:00:00Z", ts="1970-01-01T12:00:00Z"),
        new("d", "buy", "1", "100", tif="DAY", ts="1970-01-01T13:00:00Z"),
        {"op": "advance", "ts": "1970-01-02T00:00:00Z"},
    )
    assert out == [
        {"event": "accepted", "id": "g"},
        {"event": "accepted", "id": "d"},
        {"event": "expired", "id": "g"},
        {"event": "expired", "id": "d"},
    ]
    assert v.now == DAY


@pytest.mark.parametrize(
    "cmd",
    [
        new("x", "buy", "1", "100.001", ts=100),  # refused at the edge (price_precision)
        new("x", "buy", "1", "100", type="market", ts=100),  # refused by the venue (invalid_price)
    ],
)
def test_a_refused_command_still_moves_the_clock(cmd: dict) -> None:
    """BUG?: a `new` refused while its values are converted (price_precision, qty_precision,
    invalid_side, ...) does not move the engine clock, so the expiry it should reveal is missing;
    a `new` refused by the venue itself moves the clock first. The same goes for cancel/amend
    values refused at the edge."""
    v = Venue()
    run(v, new("g", "buy", "1", "100", tif="GTD", expire_ts=50, ts=1))
    out = run(v, cmd)
    assert out[0] == {"event": "expired", "id": "g"}
    assert out[1]["event"] == "rejected"
    assert v.now == 100


def test_cancel_and_amend_refusals_carry_op() -> None:
    v = Venue()
    run(v, new("o", "buy", "1", "100"))
    assert run(v, {"op": "cancel", "id": "zz"}) == [{"event": "rejected", "id": "zz", "reason": "unknown_order", "op": "cancel"}]
    assert run(v, {"op": "amend", "id": "zz", "qty": "1"}) == [
        {"event": "rejected", "id": "zz", "reason": "unknown_order", "op": "amend"},
    ]
    assert run(v, {"op": "amend", "id": "o"}) == [{"event": "rejected", "id": "o", "reason": "invalid_amend", "op": "amend"}]
    assert run(v, {"op": "amend", "id": "o", "price": "100.001"}) == [
        {"event": "rejected", "id": "o", "reason": "price_precision", "op": "amend"},
    ]
    assert run(v, {"op": "amend", "id": "o", "qty": "0"}) == [{"event": "rejected", "id": "o", "reason": "invalid_qty", "op": "amend"}]
    assert run(v, {"op": "cancel", "id": "o", "account": "a2"}) == [
        {"event": "rejected", "id": "o", "reason": "unknown_order", "op": "cancel"},
    ]
    assert run(v, {"op": "cancel", "id": "o", "account": "a1"}) == [{"event": "cancelled", "id": "o"}]


def test_amend_price_and_qty_through_commands() -> None:
    v = Venue()
    run(v, new("o", "buy", "1", "100"), new("m", "sell", "0.4", "100.5", account="a2"))
    assert run(v, {"op": "amend", "id": "o", "price": "100.50", "qty": "0.5"}) == [
        {"event": "amended", "id": "o"},
        {"event": "filled", "symbol": "BTC-USD", "taker": "o", "maker": "m", "price": "100.5", "qty": "0.4"},
    ]
    assert resting_dicts(v) == [
        {"event": "resting", "id": "o", "symbol": "BTC-USD", "side": "buy", "price": "100.5", "qty": "0.1"},
    ]


def test_admin_ops() -> None:
    v = Venue()
    run(v, new("o1", "buy", "1", "100", account="a1"), new("o2", "buy", "1", "100", account="a2", symbol=ETH))
    assert run(v, {"op": "halt", "symbol": BTC, "reason": "maintenance", "ts": 5}) == []
    assert v.halted == {BTC: "maintenance"} and v.now == 5
    assert run(v, new("o3", "buy", "1", "100")) == [{"event": "rejected", "id": "o3", "reason": "halted"}]
    run(v, {"op": "resume", "symbol": BTC})
    assert run(v, new("o4", "buy", "1", "100")) == [{"event": "accepted", "id": "o4"}]
    run(v, {"op": "limit", "key": "max_position", "value": "2", "account": "a1", "symbol": BTC})
    assert v.limits.get("max_position", "a1", BTC) == 2
    assert run(v, new("o5", "buy", "0.001", "100")) == [{"event": "rejected", "id": "o5", "reason": "max_position"}]
    run(v, {"op": "deposit", "account": "a9", "currency": "USD", "amount": "0.5"})
    assert v.accounts["a9"] is not None
    assert run(v, {"op": "cancel_all", "account": "a1"}) == [{"event": "cancelled", "id": "o1"}, {"event": "cancelled", "id": "o4"}]
    assert run(v, {"op": "kill", "on": True}) == [{"event": "cancelled", "id": "o2"}]
    assert run(v, new("o6", "buy", "1", "100")) == [{"event": "rejected", "id": "o6", "reason": "kill_switch"}]
    run(v, {"op": "kill", "on": False})
    assert run(v, new("o7", "buy", "1", "100")) == [{"event": "accepted", "id": "o7"}]


def test_deposit_amount_is_exact() -> None:
    v = Venue(config=VenueConfig(initial_balances={"USD": Decimal(0)}))
    run(v, {"op": "deposit", "account": "a1", "currency": "USD", "amount": "100.5"})
    assert run(v, new("o", "buy", "1.005", "100")) == [{"event": "accepted", "id": "o"}]
    assert run(v, new("o2", "buy", "0.001", "100")) == [{"event": "rejected", "id": "o2", "reason": "insufficient_balance"}]


def test_load_limits_scopes() -> None:
    v = Venue()
    load_limits(
        v,
        {
            "max_order_notional": "1000",
            "symbols": {BTC: {"max_order_notional": "2000", "price_band_pct": "10"}},
            "accounts": {
                "a1": {"max_order_notional": "3000", "symbols": {BTC: {"max_order_notional": "4000"}}},
            },
        },
    )
    get = v.limits.get
    assert get("max_order_notional", "a2", ETH) == 1000
    assert get("max_order_notional", "a2", BTC) == 2000
    assert get("max_order_notional", "a1", ETH) == 3000
    assert get("max_order_notional", "a1", BTC) == 4000
    assert get("price_band_pct", "a1", BTC) == 10
    assert get("price_band_pct", "a1", ETH) == 5
    assert run(v, new("o", "buy", "40", "100", account="a1")) == [{"event": "accepted", "id": "o"}]
    assert run(v, new("o2", "buy", "20.001", "100", account="a2")) == [{"event": "rejected", "id": "o2", "reason": "max_notional"}]


def test_jsonl_replay_is_deterministic() -> None:
    lines = [
        json.dumps(c)
        for c in [
            new("a", "sell", "1", "100.00", account="x", ts=1),
            new("b", "sell", "2", "100.50", account="y", ts=2),
            new("c", "buy", "2.5", "100.50", account="z", ts=3),
            {"op": "amend", "id": "b", "price": "100.25", "ts": 4},
            new("d", "buy", "1", account="z", ts=5),
            {"op": "cancel", "id": "c", "ts": 6},
            new("e", "sell", "0.5", "99", account="x", tif="IOC", ts=7),
        ]
    ]

    def replay() -> tuple[list[dict], list[dict]]:
        v = Venue()
        out = [event_dict(v, e) for line in lines for e in apply(v, json.loads(line))]
        return out, resting_dicts(v)

    (events, resting), again = replay(), replay()
    assert (events, resting) == again
    assert json.loads(json.dumps(events)) == events
    fill = lambda t, m, p, q: {"event": "filled", "symbol": BTC, "taker": t, "maker": m, "price": p, "qty": q}  # noqa: E731
    assert events == [
        {"event": "accepted", "id": "a"},
        {"event": "accepted", "id": "b"},
        {"event": "accepted", "id": "c"},
        fill("c", "a", "100", "1"),
        fill("c", "b", "100.5", "1.5"),
        {"event": "amended", "id": "b"},
        {"event": "accepted", "id": "d"},
        fill("d", "b", "100.25", "0.5"),
        {"event": "cancelled", "id": "d"},
        {"event": "rejected", "id": "c", "reason": "order_closed", "op": "cancel"},
        {"event": "accepted", "id": "e"},
        {"event": "cancelled", "id": "e"},
    ]
    assert resting == []


def test_event_dict_rejects_non_events() -> None:
    with pytest.raises(TypeError):
        event_dict(Venue(), object())
