"""A strategy's view of its orders follows the venue's events, whatever it has asked for meanwhile."""

from decimal import Decimal
from typing import Any

from tradsys.daemon.strategies import LiveContext
from tradsys.engine import Venue, VenueConfig
from tradsys.engine.commands import apply
from tradsys.engine.strategy import OrderData, Params, Strategy, StrategyRunner

SEC = 1_000_000_000


class Recorder(Strategy):
    def on_start(self) -> None:
        self.updates: list[tuple[str, str, str]] = []

    def on_order(self, order: OrderData) -> None:
        self.updates.append((order.id, order.status, order.reason))


class Host:
    """The live context on a venue, its commands applied when told to (`flush`), as the engine
    thread does a tick later; meanwhile `market` lets others act."""

    now = 1_000 * SEC

    def __init__(self) -> None:
        self.venue = Venue(config=VenueConfig(initial_balances={"USD": Decimal(1_000_000)}))
        self.ctx = LiveContext(self, self.venue, ("BTC-USD",), "s-", "strat")  # type: ignore[arg-type]
        self.runner = StrategyRunner("1", Recorder, Params({}), self.ctx)
        self.runner.start()

    def flush(self) -> None:
        sent, self.ctx.out = self.ctx.out, []
        for cmd in sent:
            self.market(cmd)

    def market(self, cmd: dict[str, Any]) -> None:
        """One command reaches the venue; its events reach the strategy."""
        self.runner.events(apply(self.venue, {"ts": self.now, **cmd}))

    @property
    def updates(self) -> list[tuple[str, str, str]]:
        return self.runner.strategy.updates  # type: ignore[attr-defined, no-any-return]


def taker_sells(qty: str, n: int) -> dict[str, Any]:
    return {"op": "new", "id": f"t{n}", "account": "taker", "symbol": "BTC-USD", "side": "sell", "type": "market",
            "qty": qty}


def test_a_fill_that_ends_the_order_ends_it_in_the_view_while_an_amend_is_on_its_way() -> None:
    h = Host()
    oid = h.ctx.buy(0.01, 100)
    h.flush()
    h.market(taker_sells("0.004", 1))
    h.ctx.amend(oid, qty=0.01)  # back to full size; the venue has not seen it yet
    order = h.ctx.order(oid)
    assert order is not None and (order.open_qty, order.in_flight) == (0.006, 1)  # the venue's, one request out
    h.market(taker_sells("0.006", 2))  # the rest fills before the amend arrives
    assert h.ctx.order(oid) is None and order.status == "filled"
    h.flush()  # the venue answers the amend "order_closed"
    assert h.ctx.open_orders() == [] and h.ctx.position() == 0.01
    h.ctx.amend(oid, price=101)
    h.ctx.cancel(oid)
    assert h.ctx.out == [], "nothing is sent for an order that ended"


def test_an_amend_changes_the_view_when_the_venue_confirms_it() -> None:
    h = Host()
    oid = h.ctx.buy(0.01, 100)
    h.flush()
    h.ctx.amend(oid, price=99.5, qty=0.02)
    order = h.ctx.order(oid)
    assert order is not None and (order.price, order.open_qty, order.in_flight) == (100.0, 0.01, 1)
    h.flush()
    assert (order.price, order.open_qty, order.qty, order.in_flight) == (99.5, 0.02, 0.02, 0)
    assert h.updates[-1] == (oid, "new", "")


def test_a_refused_amend_leaves_the_order_as_the_venue_has_it_and_says_why() -> None:
    h = Host()
    oid = h.ctx.place("buy", 0.01, 100, post_only=True)
    h.flush()
    h.market({"op": "new", "id": "a1", "account": "other", "symbol": "BTC-USD", "side": "sell", "price": "101",
              "qty": "1"})
    h.ctx.amend(oid, price=102)
    h.flush()
    order = h.ctx.order(oid)
    assert order is not None and order.is_open
    assert (order.price, order.reason, order.in_flight) == (100.0, "post_only", 0)
    assert h.updates[-1] == (oid, "new", "post_only")
    assert h.venue.orders[oid].price == 10_000  # ticks of 0.01: where the view says


def test_an_order_the_venue_no_longer_has_leaves_the_view() -> None:
    h = Host()
    oid = h.ctx.buy(0.01, 100)
    h.flush()
    h.venue.cancel(oid, h.now)  # closed without the strategy seeing the event (a voided batch, say)
    h.ctx.amend(oid, price=99)
    h.flush()
    assert h.ctx.order(oid) is None and h.updates[-1] == (oid, "cancelled", "order_closed")


def test_a_cancel_is_sent_once_until_the_venue_answers() -> None:
    h = Host()
    a, b = h.ctx.buy(0.01, 100), h.ctx.sell(0.01, 110)
    h.flush()
    h.ctx.cancel(a)
    h.ctx.cancel(a)
    h.ctx.cancel_all()
    assert [(c["op"], c["id"]) for c in h.ctx.out] == [("cancel", a), ("cancel", b)]
    h.flush()
    assert h.ctx.open_orders() == [] and [u[1] for u in h.updates[-2:]] == ["cancelled", "cancelled"]
