"""The trading engine: pure, synchronous, deterministic. No I/O, no clocks, no threads."""

from types import FunctionType

from tradsys.engine.bars import Bar, BarAggregator, format_interval, parse_interval
from tradsys.engine.book import OrderBook
from tradsys.engine.enums import OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce
from tradsys.engine.errors import Rejected
from tradsys.engine.events import (
    EVENT_KINDS, Event, OrderAccepted, OrderAmended, OrderCancelled, OrderExpired, OrderFilled, OrderRejected,
    OrderTriggered,
)
from tradsys.engine.instrument import DEFAULT_INSTRUMENTS, Instrument
from tradsys.engine.order import Order, new_order
from tradsys.engine.position import Position
from tradsys.engine.limits import DEFAULT_LIMITS, RiskLimits
from tradsys.engine.venue import Venue, VenueConfig

COMPILED = not isinstance(Venue.place, FunctionType)
"""True when the install compiled the engine with mypyc (setup.py); False for plain Python."""

__all__ = [
    "COMPILED", "Bar", "BarAggregator", "DEFAULT_INSTRUMENTS", "DEFAULT_LIMITS", "EVENT_KINDS", "Event", "Instrument",
    "Order", "OrderAccepted", "OrderAmended", "OrderBook", "OrderCancelled", "OrderExpired", "OrderFilled",
    "OrderRejected", "OrderStatus", "OrderTriggered", "OrderType", "Position", "Rejected", "RiskLimits",
    "SelfTradePrevention", "Side", "TimeInForce", "Venue", "VenueConfig", "format_interval", "new_order", "parse_interval",
]
