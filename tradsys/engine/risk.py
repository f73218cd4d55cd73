"""The risk engine: every rule a new order or an amend must pass before it reaches the book.

One checker serves both paths. `Venue.place` runs it on each new order and `Venue.amend` on each
change beyond lowering a size, passing what differs: the order's price, stop price and open
quantity after the change, and the lots it had open before (none for a new order). The rules, in
the order that decides which reason an order with several faults gets:

- trading state (`check_trading`): the kill switch, a manual halt, a tripped circuit breaker;
- shape (`check_shape`, `check_amend_shape`): positive quantity and prices, the fields the order
  type and TIF need and no others;
- flags (`RiskEngine.check`): a post-only order must not take liquidity, a reduce-only order must
  not outgrow the position it reduces;
- limits (`RiskEngine.check`, skipped when the venue runs with risk off): orders per second, daily
  loss, min/max quantity, price band, order notional, position, available balance.
"""

from typing import TYPE_CHECKING, Final

from mypy_extensions import mypyc_attr

from tradsys.engine.account import Account, Wallet
from tradsys.engine.clock import DAY_NS, SECOND_NS
from tradsys.engine.enums import OrderType, Side, TimeInForce
from tradsys.engine.errors import Rejected
from tradsys.engine.instrument import Instrument, from_cash
from tradsys.engine.limits import Limits
from tradsys.engine.order import Order
from tradsys.engine.position import Position, magnitude, reducible

if TYPE_CHECKING:
    from tradsys.engine.venue import Venue

# Final: compiled, these are C statics instead of module dict lookups on every order.
BUY: Final = Side.BUY
LIMIT: Final = OrderType.LIMIT
GTC: Final = TimeInForce.GTC
IOC: Final = TimeInForce.IOC
FOK: Final = TimeInForce.FOK


def check_shape(order: Order, now: int) -> None:
    """What a new order must look like whatever the limits: a positive quantity, the price and stop
    price its type needs and no others, an expiry its TIF allows, post-only only on a resting limit
    order. Fills in what type and TIF imply: a market order is IOC unless FOK, a DAY order expires
    at the end of the engine-clock day. What a plain limit order does not need branches off."""
    if order.qty <= 0:
        raise Rejected("invalid_qty", "qty must be positive")
    if order.type is LIMIT and order.stop_price is None:
        price = order.price
        if price is None or price <= 0:
            raise Rejected("invalid_price", "a limit order needs a positive price")
    else:
        _check_type(order)
    if order.tif is not GTC or order.expire_ns is not None:
        _check_tif(order, now)
    if order.post_only and (order.type is not LIMIT or order.price is None or order.tif is IOC or order.tif is FOK):
        raise Rejected("invalid_post_only", "post-only needs a resting limit order")


def _check_type(order: Order) -> None:
    otype = order.type
    if otype is LIMIT or otype is OrderType.STOP_LIMIT:
        if order.price is None or order.price <= 0:
            raise Rejected("invalid_price", f"a {otype} order needs a positive price")
    elif order.price is not None:
        raise Rejected("invalid_price", f"a {otype} order takes no price")
    if otype is OrderType.STOP or otype is OrderType.STOP_LIMIT:
        if order.stop_price is None or order.stop_price <= 0:
            raise Rejected("invalid_stop_price", f"a {otype} order needs a positive stop price")
    elif order.stop_price is not None:
        raise Rejected("invalid_stop_price", f"a {otype} order takes no stop price")
    if otype is OrderType.MARKET and (order.tif is not IOC and order.tif is not FOK):
        order.tif = IOC


def _check_tif(order: Order, now: int) -> None:
    if order.tif is TimeInForce.GTD:
        if order.expire_ns is None or order.expire_ns <= now:
            raise Rejected("invalid_expire", "a GTD order needs an expiry after the engine clock")
    elif order.tif is TimeInForce.DAY:
        order.expire_ns = (now // DAY_NS + 1) * DAY_NS
    elif order.expire_ns is not None:
        raise Rejected("invalid_expire", f"a {order.tif} order takes no expiry")


def check_amend_shape(order: Order, price: int | None, qty: int | None, stop_price: int | None) -> None:
    """What an amend must look like: a positive open quantity and price, and only fields the order
    has (a price only if it has one, a stop price only while it waits for it)."""
    if qty is not None and qty <= 0:
        raise Rejected("invalid_qty", "new open qty must be positive")
    if price is not None and price <= 0:
        raise Rejected("invalid_price", "price must be positive")
    if price is not None and order.price is None:
        raise Rejected("invalid_price", f"a {order.type} order has no price to amend")
    if stop_price is not None and (order.stop_price is None or order.triggered):
        raise Rejected("invalid_stop_price", "only a pending stop order has a stop price to amend")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RiskEngine:
    """The rules that read the venue's state (trading state, books, positions, wallets) and its
    limits. `enabled` False (`VenueConfig.risk`) skips the limits, not the other rules."""

    __slots__ = ("venue", "enabled")

    def __init__(self, venue: "Venue", enabled: bool) -> None:
        self.venue = venue
        self.enabled = enabled

    def check_trading(self, symbol: str) -> None:
        """Refuse while the kill switch is on or `symbol` is halted, by hand or by its circuit breaker."""
        venue = self.venue
        if venue.kill_switch:
            raise Rejected("kill_switch", "the kill switch is on: no new orders")
        if (venue.halted and symbol in venue.halted) or venue.breakers[symbol].halted_until > venue.now:
            why = venue.halted.get(symbol, "manual")
            code = venue.halt_reason(symbol) or "halted"
            raise Rejected(code, f"{symbol} is halted" + ("" if why in ("manual", code) else f": {why}"))

    def check(
        self, order: Order, acct: Account, pos: Position | None, inst: Instrument, price: int | None,
        stop: int | None, open_qty: int, was_open: int, dry_run: bool,
    ) -> None:
        """The flags and limits for `order` at `price` and `stop` with `open_qty` lots open, of which
        `was_open` were open before: 0 for a new order (`pos` None before the account's first order
        in the symbol), the open quantity for an amend. A dry run (`Venue.check`) does not count
        against the rate limit."""
        reduce_only = order.reduce_only
        if reduce_only or order.post_only:
            self._check_flags(order, pos, price, open_qty)
        if not self.enabled:
            return
        limits = self.venue.limits.resolved(order.account, inst)
        if limits.rate is not None:
            self._throttle(acct, limits.rate, dry_run)
        added = open_qty - was_open
        if limits.loss is not None and added > 0 and not reduce_only:
            self._check_loss(acct, limits.loss)
        total = order.filled_qty + open_qty
        if total < inst.min_qty or total > inst.max_qty:
            limit, name = (inst.min_qty, "min_qty") if total < inst.min_qty else (inst.max_qty, "max_qty")
            raise Rejected(name, f"qty {inst.qty(total)} is outside the {name.replace('_', ' ')} {inst.qty(limit)}")
        if price is None:
            price = self._market_price(order, stop, limits)
            if price is None:
                return
        elif limits.band_ppm is not None:
            ref = self._reference(order, stop)
            if ref is not None:
                _check_band(inst, limits.band_ppm, price, ref)
        if reduce_only:
            return
        wallet = pos.wallet if pos is not None else acct.wallet(inst.quote)
        extra_hold = (price * open_qty - order.hold_price * was_open) * inst.cash_mult
        _check_size(inst, limits, pos, wallet, order.side, price, open_qty, added, extra_hold)

    def hold_price(self, order: Order) -> int:
        """The price at which an order holds cash for each open lot: its limit price; for market and
        stop-market orders the edge of their price band, or without a band the reference itself.
        0 (nothing held) when there is no price to go by."""
        price = order.price
        if price is None:
            price = self._market_price(order, order.stop_price, self._limits(order))
        return price or 0

    def sweep_limit(self, order: Order) -> int | None:
        """The worst price a market order may trade at: the edge of its price band; None (any price)
        without a band."""
        limits = self._limits(order)
        if limits is None or limits.band_ppm is None:
            return None
        return self._market_price(order, order.stop_price, limits)

    def _check_flags(self, order: Order, pos: Position | None, price: int | None, open_qty: int) -> None:
        if order.post_only and price is not None and self.venue.books[order.symbol].would_take(order.side, price):
            raise Rejected("post_only", "post-only order would take liquidity")
        if order.reduce_only:
            held = 0 if pos is None else reducible(pos.qty, order.side)
            if open_qty > held:
                raise Rejected("reduce_only", f"reduce-only order for {open_qty} lots exceeds the {held} it can reduce")

    def _throttle(self, acct: Account, rate: int, dry_run: bool) -> None:
        """Count an order against its account's per-second budget (engine-clock seconds)."""
        second = self.venue.now // SECOND_NS
        count = acct.rate_count if acct.rate_second == second else 0
        if count >= rate:
            raise Rejected("rate_limit", f"more than {rate} orders per second")
        if not dry_run:
            acct.rate_second, acct.rate_count = second, count + 1

    def _check_loss(self, acct: Account, loss: int) -> None:
        if acct.loss_day == self.venue.now // DAY_NS and -acct.day_realized >= loss:
            raise Rejected("daily_loss_limit", "the account reached its daily loss limit")

    def _reference(self, order: Order, stop: int | None) -> int | None:
        """The centre of an order's price band: a waiting stop order's stop price, else the venue's
        reference price (last trade, else mid)."""
        if stop is not None and not order.triggered:
            return stop
        return self.venue.reference_price(order.symbol)

    def _market_price(self, order: Order, stop: int | None, limits: Limits | None) -> int | None:
        """The edge of a price-less order's band around its reference (the best opposite price when
        there is none); without a band (`limits` None, or no band limit) the reference itself."""
        ref = self._reference(order, stop)
        if ref is None:
            book = self.venue.books[order.symbol]
            ref = book.best_ask() if order.side is BUY else book.best_bid()
            if ref is None:
                return None
        if limits is None or limits.band_ppm is None:
            return ref
        band = ref * limits.band_ppm // 1_000_000
        return ref + band if order.side is BUY else max(1, ref - band)

    def _limits(self, order: Order) -> Limits | None:
        """The order's resolved limits; None with risk off."""
        if not self.enabled:
            return None
        venue = self.venue
        return venue.limits.resolved(order.account, venue.instruments[order.symbol])


def _check_band(inst: Instrument, band_ppm: int, price: int, ref: int) -> None:
    if magnitude(price - ref) * 1_000_000 > ref * band_ppm:
        raise Rejected("price_band", f"price {inst.price(price)} is more than {band_ppm / 10_000:g}% from {inst.price(ref)}")


def _check_size(
    inst: Instrument, limits: Limits, pos: Position | None, wallet: Wallet, side: Side, price: int, qty: int,
    added: int, extra_hold: int,
) -> None:
    """Notional, position and balance limits for an order of `qty` at `price` that adds `added`
    lots of possible exposure and needs `extra_hold` more cash held."""
    notional = price * qty * inst.cash_mult
    if limits.max_notional is not None and notional > limits.max_notional:
        raise Rejected(
            "max_notional",
            f"order notional {inst.notional(price, qty):,} > limit {from_cash(limits.max_notional):,} {inst.quote}",
        )
    if limits.max_position is not None and added > 0:
        if pos is None:
            exposure = added
        elif side is BUY:
            exposure = pos.qty + pos.open_buy + added
        else:
            exposure = -(pos.qty - pos.open_sell - added)
        if exposure > limits.max_position:
            raise Rejected(
                "max_position",
                f"position could reach {inst.qty(exposure)} > limit {inst.qty(limits.max_position)} {inst.base}",
            )
    if extra_hold > 0 and extra_hold > wallet.balance - wallet.reserved - wallet.margin:
        raise Rejected(
            "insufficient_balance",
            f"order needs {from_cash(extra_hold):,} {inst.quote} more, available {from_cash(wallet.available):,}",
        )
