"""Settlement: what an open order holds, and what each fill books to orders, positions and wallets.

Positions are margined at cost (1x): a position ties up its cost basis in its quote wallet's
`margin`. An open order holds cash (`reserved`) at its hold price for each open lot and counts its
lots toward position limits (`open_buy`, `open_sell`). Fees are integers, rounded in the venue's
favour.
"""

from typing import Final

from tradsys.engine.enums import OrderStatus, Side
from tradsys.engine.instrument import to_decimal
from tradsys.engine.order import Order
from tradsys.engine.position import magnitude, product

FEE_SCALE: Final = 1_000_000
"""Fee rates are integers in millionths (1 bp = 100), so 0.25 bp is representable exactly."""

BUY: Final = Side.BUY
PARTIAL: Final = OrderStatus.PARTIALLY_FILLED
FILLED: Final = OrderStatus.FILLED


def fee_rate(bps: object) -> int:
    """Basis points (negative = rebate) as an integer rate in millionths."""
    rate = to_decimal(bps, "fee") * 100
    if rate != rate.to_integral_value():
        raise ValueError(f"fee {bps} bps is finer than 0.01 bp")
    return int(rate)


def fee_for(traded: int, rate: int) -> int:
    """The fee on `traded` ticks x lots at `rate` millionths per tick x lot, rounded up.

    Rates per tick x lot rather than per cash unit: compiled, ticks x lots times a rate stays in
    machine integers, where the notional (2**30 or more) times a rate would not."""
    return -(-(traded * rate) // FEE_SCALE)


def hold(order: Order, lots: int, mult: int) -> None:
    """Count `lots` more of an accepted order as open: toward its position's limits, and with cash
    held at its hold price (none for a reduce-only order)."""
    pos = order.pos
    if order.side is BUY:
        pos.open_buy += lots
    else:
        pos.open_sell += lots
    pos.wallet.reserved += order.hold_price * lots * mult


def release(order: Order, lots: int, mult: int) -> None:
    """`hold` undone for `lots` that will not fill: cancelled, expired or amended away."""
    pos = order.pos
    if order.side is BUY:
        pos.open_buy -= lots
    else:
        pos.open_sell -= lots
    pos.wallet.reserved -= order.hold_price * lots * mult


def settle(order: Order, price: int, qty: int, notional: int, fee: int, mult: int, day: int, now: int) -> None:
    """Book one side of a match: the order's fill, its position, fees and wallet, and the account's
    realized PnL of the day (`day`: engine-clock days since the epoch).

    A fill that adds to a position moves |cost| by exactly its notional (the cost basis always has
    the position's sign), so the margin follows |cost| without recomputing it."""
    open_qty = order.open_qty - qty
    order.open_qty = open_qty
    traded = price * qty
    order.filled_qty += qty
    order.filled_cost += traded
    order.updated_ns = now
    pos = order.pos
    wallet = pos.wallet
    held = pos.qty
    # Signs compared, not multiplied: compiled, a product with a negative operand takes the slow path.
    buy = order.side is BUY
    if buy:
        pos.open_buy -= qty
        signed = qty
    else:
        pos.open_sell -= qty
        signed = -qty
    if held == 0 or (held > 0) == buy:
        pos.qty = held + signed
        pos.cost += traded if buy else -traded
        wallet.margin += notional
        cash = -fee
    else:
        before = magnitude(pos.cost)
        cash = product(pos.reduce(signed, price), mult) - fee
        wallet.margin -= (before - magnitude(pos.cost)) * mult  # shrinks: a positive product is cheaper
    pos.fees += fee
    wallet.balance += cash
    wallet.reserved -= order.hold_price * qty * mult
    acct = order.acct
    if acct.loss_day != day:
        acct.loss_day, acct.day_realized = day, 0
    acct.day_realized += cash
    order.status = PARTIAL if open_qty else FILLED
