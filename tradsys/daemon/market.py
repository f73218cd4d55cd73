"""The embedded default market: a simulated, always-on market on the daemon's own engine.

With no config and no network the daemon still has something to trade against: per symbol a
fair price (`market_prices`: `RandomWalk`, or a `DataFeed` replaying a trades/bars file),
liquidity providers that keep a ladder of post-only quotes around it, and noise takers that
trade against the book; the knobs are `market_config.SimConfig`.

The market never touches the venue. Every tick the engine thread calls
`SimulatedMarket.step(now_ns, venue)`, which only *reads* the venue (books, open orders, last
price, positions, limits) and returns commands in the `tradsys.engine.commands` format; the
engine thread stamps them with `ts` and runs them through `commands.apply`, so they are
risk-checked and journaled like anyone's orders. Given the seed, the sequence of `now_ns` and
the venue state, the commands are always the same.

Ids and accounts: sim orders are `sim-<symbol>-<run>-<n>` (the daemon's own ids are pure digits;
`<run>` is the first step's time in base 36, so a restarted daemon does not reuse the ids
in its journal); accounts are `sim-lp-1..N` and `sim-taker`. At the first step the market
cancels open orders of its accounts that it does not know (left over from an earlier run).
tests/daemon/test_market.py prints the trade and event rates this gives at the defaults.
"""

from __future__ import annotations

import math
import random
from typing import Mapping

from tradsys.daemon.ids import run_tag
from tradsys.daemon.market_config import DEFAULT_SYMBOLS, SimConfig
from tradsys.daemon.market_prices import SECOND_NS, PriceSource, RandomWalk
from tradsys.engine.commands import fmt
from tradsys.engine.instrument import Instrument, to_cash
from tradsys.engine.order import Order
from tradsys.engine.venue import Venue

SETUP_WAIT_STEPS = 100
"""The first steps return nothing until `setup_commands()` are in effect (the daemon may tick
before they are applied), but after this many steps the market starts anyway."""
BAND_MARGIN = 0.95
"""Quote at most this fraction of the venue's price band away from its reference price."""


class _Slot:
    """One quote of one provider: side and level, and the id of its live order (if any)."""

    __slots__ = ("lp", "buy", "level", "id")

    def __init__(self, lp: int, buy: bool, level: int) -> None:
        self.lp = lp
        self.buy = buy
        self.level = level
        self.id: str | None = None


class _Symbol:
    __slots__ = ("symbol", "inst", "tick", "lot", "rng", "slots", "next_arrival")

    def __init__(self, symbol: str, inst: Instrument, rng: random.Random, config: SimConfig) -> None:
        self.symbol = symbol
        self.inst = inst
        self.tick = float(inst.tick_size)
        self.lot = float(inst.lot_size)
        self.rng = rng
        self.slots = [
            _Slot(lp, buy, level)
            for level in range(config.levels)
            for lp in range(config.lp_accounts)
            for buy in (True, False)
        ]
        self.next_arrival: int | None = None


class SimulatedMarket:
    """Liquidity providers and noise takers for `symbols`, around `source`'s fair prices.

    `setup_commands()` once at start (limits lifted and cash for the sim accounts), then
    `step(now_ns, venue)` every tick; steps return nothing until the setup is in effect (for at
    most SETUP_WAIT_STEPS steps), so the first quotes never meet the default account limits.
    Commands per step are bounded: at most
    2 x lp_accounts x levels quote commands plus `max_takers_per_step` takers per symbol,
    plus (first steps after a restart only) `max_cancels_per_step` cleanup cancels.
    """

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        config: SimConfig | None = None,
        source: PriceSource | None = None,
    ) -> None:
        self.config = config = config or SimConfig()
        if config.symbols is not None:
            unknown = [s for s in config.symbols if s not in instruments]
            if unknown:
                raise ValueError(
                    f"simulated market: unknown symbol(s) {', '.join(unknown)}; venue has {', '.join(instruments)}"
                )
            symbols = tuple(config.symbols)
        else:
            wanted = tuple(getattr(source, "symbols", None) or DEFAULT_SYMBOLS)
            symbols = tuple(s for s in wanted if s in instruments)
            if not symbols:
                raise ValueError(f"simulated market: none of {', '.join(wanted)} is an instrument of the venue")
        if config.lp_accounts < 1 or config.levels < 1:
            raise ValueError("simulated market needs at least one liquidity provider and one level")
        self.symbols = symbols
        self.source: PriceSource = source if source is not None else RandomWalk.from_config(config, symbols)
        self._value = getattr(self.source, "value", None)
        prefix = config.account_prefix
        self.lp_accounts = tuple(f"{prefix}-lp-{i + 1}" for i in range(config.lp_accounts))
        self.taker_account = f"{prefix}-taker"
        self.accounts = (*self.lp_accounts, self.taker_account)
        self._symbols = [
            _Symbol(s, instruments[s], random.Random(f"{config.seed}/{s}/flow"), config) for s in symbols
        ]
        self._live: set[str] = set()
        self._cleanup: list[str] | None = None
        self._run = ""
        self._n = 0
        self.stats: dict[str, int] = {"new": 0, "amend": 0, "cancel": 0, "taker": 0, "steps": 0}

    # -- public ----------------------------------------------------------------------------

    def setup_commands(self) -> list[dict]:
        """Admin commands to run once before the first step: the sim accounts trade without
        per-account limits (rate, notional, position, daily loss) and with ample cash. The
        price band and circuit breakers still apply to them."""
        out: list[dict] = []
        quotes = list(dict.fromkeys(s.inst.quote for s in self._symbols))
        for account in self.accounts:
            for key in ("max_orders_per_second", "max_order_notional", "max_position", "daily_loss_limit"):
                out.append({"op": "limit", "key": key, "value": None, "account": account})
            for ccy in quotes:
                out.append({"op": "deposit", "account": account, "currency": ccy, "amount": fmt(self.config.deposit)})
        return out

    def owns(self, order_id: str) -> bool:
        """Whether `order_id` is one of this market's orders (quotes or takers)."""
        return order_id.startswith(self.config.account_prefix + "-")

    def step(self, now_ns: int, venue: Venue) -> list[dict]:
        """Commands for this tick. Reads the venue, never changes it."""
        out: list[dict] = []
        self.stats["steps"] += 1
        if self._cleanup is None:
            if not self._ready(venue) and self.stats["steps"] <= SETUP_WAIT_STEPS:
                return out
            self._start(now_ns, venue)
        if self._cleanup:
            cap = self.config.max_cancels_per_step
            batch, self._cleanup = self._cleanup[:cap], self._cleanup[cap:]
            for oid in batch:
                order = venue.orders.get(oid)
                if order is not None:
                    out.append({"op": "cancel", "id": oid, "account": order.account})
            self.stats["cancel"] += len(out)
        for st in self._symbols:
            fair = self._fair(st, now_ns)
            if fair is None or not fair > 0 or not math.isfinite(fair):
                continue
            halted = st.symbol in venue.halted or venue.breakers[st.symbol].halted_until > max(now_ns, venue.now)
            if halted or venue.kill_switch:
                st.next_arrival = None  # no burst of takers when trading resumes
                continue
            best_bid, best_ask = self._quote(st, fair, venue, out)
            self._take(st, fair, now_ns, venue, best_bid, best_ask, out)
        return out

    # -- internals -------------------------------------------------------------------------

    def _ready(self, venue: Venue) -> bool:
        """Whether `setup_commands()` are in effect: limits lifted and cash deposited."""
        quotes = {s.inst.quote for s in self._symbols}
        deposit = to_cash(self.config.deposit)
        for account in self.accounts:
            acct = venue.accounts.get(account)
            if acct is None or venue.limits.get("max_order_notional", account) is not None:
                return False
            for ccy in quotes:
                wallet = acct.wallets.get(ccy)
                if wallet is None or wallet.balance < deposit:
                    return False
        return True

    def _start(self, now_ns: int, venue: Venue) -> None:
        self._run = run_tag(now_ns)
        accounts = set(self.accounts)
        self._cleanup = [oid for oid, o in venue.orders.items() if o.account in accounts]
        anchor = getattr(self.source, "anchor", None)
        if anchor is not None:
            for st in self._symbols:
                last = venue.last.get(st.symbol)
                if last is not None:
                    anchor(st.symbol, st.inst.price(last))

    def _fair(self, st: _Symbol, now_ns: int) -> float | None:
        if self._value is not None:
            return self._value(st.symbol, now_ns)
        price = self.source.price(st.symbol, now_ns)
        return None if price is None else float(price)

    def _next_id(self, symbol: str) -> str:
        self._n += 1
        return f"{self.config.account_prefix}-{symbol}-{self._run}-{self._n}"

    def _lots(self, st: _Symbol, notional: float, fair: float) -> int:
        inst = st.inst
        lots = int(round(notional / (fair * st.lot)))
        return min(max(lots, inst.min_qty, 1), inst.max_qty)

    def _quote(self, st: _Symbol, fair: float, venue: Venue, out: list[dict]) -> tuple[int | None, int | None]:
        """Keep every provider's ladder near its target; returns the best bid/ask after these commands."""
        cfg = self.config
        inst, symbol = st.inst, st.symbol
        fair_t = fair / st.tick
        ref = venue.reference_price(symbol)
        orders = venue.orders
        live = self._live
        n_lps = cfg.lp_accounts

        # (slot, target price in ticks, its live order or None, band low, band high)
        retreat: list[tuple[_Slot, int, Order | None, int, int | None]] = []
        advance: list[tuple[_Slot, int, Order | None, int, int | None]] = []
        sim_bid = sim_ask = None  # best sim prices once the retreats are done
        for lp in range(n_lps):
            account = self.lp_accounts[lp]
            lo, hi = _band(venue, account, inst, ref)
            acct = venue.accounts.get(account)
            pos = acct.positions.get(symbol) if acct is not None else None
            center = fair_t
            if pos is not None and pos.qty and cfg.skew_bps:
                inv = pos.qty * st.lot * fair / cfg.inventory_limit
                center *= 1.0 - max(-1.0, min(1.0, inv)) * cfg.skew_bps / 10_000
            for slot in st.slots:
                if slot.lp != lp:
                    continue
                dist = cfg.spread_bps / 2 + cfg.level_spacing_bps * (slot.level + lp / n_lps)
                if slot.buy:
                    target = math.floor(center * (1.0 - dist / 10_000))
                else:
                    target = math.ceil(center * (1.0 + dist / 10_000))
                if target < lo:
                    target = lo
                elif hi is not None and target > hi:
                    target = hi
                order = orders.get(slot.id) if slot.id is not None else None
                if order is None:
                    if slot.id is not None:
                        live.discard(slot.id)
                        slot.id = None
                    advance.append((slot, target, None, lo, hi))
                    continue
                current = order.price
                threshold = max(1.0, fair_t * cfg.requote_bps * (1 + slot.level) / 10_000)
                if abs(target - current) > threshold:
                    if (target < current) == slot.buy:  # bid down / ask up: away from the other side
                        retreat.append((slot, target, order, lo, hi))
                        current = target
                    else:
                        advance.append((slot, target, order, lo, hi))
                if slot.buy:
                    if sim_bid is None or current > sim_bid:
                        sim_bid = current
                elif sim_ask is None or current < sim_ask:
                    sim_ask = current

        for slot, target, order, _, _ in retreat:
            out.append(self._amend(st, slot, target, fair))

        # best prices once the retreats are in: ours, or others' inside them (post-only must not cross either)
        book = venue.books[symbol]
        best_ask = sim_ask
        for price, level in book.asks.items():
            if (best_ask is None or price < best_ask) and any(oid not in live for oid in level.live):
                best_ask = price
        best_bid = sim_bid
        for price, level in book.bids.items():
            if (best_bid is None or price > best_bid) and any(oid not in live for oid in level.live):
                best_bid = price

        advance.sort(key=lambda item: item[0].level)
        for slot, target, order, lo, hi in advance:
            if slot.buy:
                price = target if best_ask is None else min(target, best_ask - 1)
                if price < lo:
                    continue  # squeezed out of the band by someone's ask: sit this one out
                if best_bid is None or price > best_bid:
                    best_bid = price
            else:
                price = target if best_bid is None else max(target, best_bid + 1)
                if hi is not None and price > hi:
                    continue
                if best_ask is None or price < best_ask:
                    best_ask = price
            if order is None:
                oid = slot.id = self._next_id(symbol)
                live.add(oid)
                out.append({
                    "op": "new", "id": oid, "account": self.lp_accounts[slot.lp], "symbol": symbol,
                    "side": "buy" if slot.buy else "sell", "type": "limit",
                    "price": fmt(inst.price(price)), "qty": self._level_qty(st, slot, fair),
                    "tif": "GTC", "post_only": True,
                })
                self.stats["new"] += 1
            elif price != order.price:
                out.append(self._amend(st, slot, price, fair))
        return best_bid, best_ask

    def _level_qty(self, st: _Symbol, slot: _Slot, fair: float) -> str:
        cfg = self.config
        jitter = 1.0 + cfg.size_jitter * (2.0 * st.rng.random() - 1.0)
        return fmt(st.inst.qty(self._lots(st, cfg.level_notional * cfg.level_growth ** slot.level * jitter, fair)))

    def _amend(self, st: _Symbol, slot: _Slot, price: int, fair: float) -> dict:
        """Move a quote (and refresh its size); a price change sends it to the back of the queue."""
        self.stats["amend"] += 1
        return {
            "op": "amend", "id": slot.id, "account": self.lp_accounts[slot.lp],
            "price": fmt(st.inst.price(price)), "qty": self._level_qty(st, slot, fair),
        }

    def _take(
        self, st: _Symbol, fair: float, now_ns: int, venue: Venue, best_bid: int | None, best_ask: int | None,
        out: list[dict],
    ) -> None:
        cfg = self.config
        if cfg.taker_rate <= 0:
            return
        rng = st.rng
        mean_gap = SECOND_NS / cfg.taker_rate
        if st.next_arrival is None:
            st.next_arrival = now_ns + int(rng.expovariate(1.0) * mean_gap)
            return
        inst, symbol = st.inst, st.symbol
        fair_t = fair / st.tick
        lo, hi = _band(venue, self.taker_account, inst, venue.reference_price(symbol))
        fired = 0
        while st.next_arrival <= now_ns and fired < cfg.max_takers_per_step:
            st.next_arrival += max(1, int(rng.expovariate(1.0) * mean_gap))
            fired += 1
            buy = rng.random() < 0.5
            size = cfg.taker_notional_median * math.exp(cfg.taker_notional_sigma * rng.gauss(0.0, 1.0))
            notional = min(cfg.taker_notional_max, size)
            qty = fmt(inst.qty(self._lots(st, notional, fair)))
            market = rng.random() < cfg.market_fraction
            slip = int(rng.random() * cfg.taker_slippage_bps * fair_t / 10_000)
            touch = best_ask if buy else best_bid
            if touch is None:
                continue  # nothing to take on that side
            cmd = {"op": "new", "id": self._next_id(symbol), "account": self.taker_account, "symbol": symbol,
                   "side": "buy" if buy else "sell"}
            if market:
                cmd.update(type="market", qty=qty, tif="IOC")
            else:
                price = touch + slip if buy else touch - slip
                price = max(price, lo) if hi is None else min(max(price, lo), hi)
                cmd.update(type="limit", price=fmt(inst.price(price)), qty=qty, tif="IOC")
            out.append(cmd)
            self.stats["taker"] += 1
        if st.next_arrival <= now_ns:  # a long pause: drop the backlog instead of bursting
            st.next_arrival = now_ns + int(rng.expovariate(1.0) * mean_gap)


def _band(venue: Venue, account: str, inst: Instrument, ref: int | None) -> tuple[int, int | None]:
    """Lowest and highest price (ticks) `account` may quote: inside the venue's price band, with a margin."""
    if ref is None:
        return 1, None
    band = venue.limits.resolved(account, inst).band_ppm
    if band is None:
        return 1, None
    reach = ref * band * BAND_MARGIN / 1_000_000
    return max(1, math.ceil(ref - reach)), math.floor(ref + reach)
