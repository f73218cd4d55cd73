"""Fill rules of the backtester: how historical data becomes fills, with no look-ahead.

Every order a strategy makes goes through `Venue.place` / `cancel` / `amend` of a real venue, with
pre-trade risk checks (notional, position, rate, daily loss, balance), so a refused order is
refused as it would be live. The data provides the other side: a `bt-market` account whose orders
are placed only to give the strategy the fills these rules allow. Strategy orders are never
matched against each other across accounts in a different way than live (self-trade prevention
applies). The price band and circuit breaker are off by default (historical prices are taken as
given); set them with `limits=` if wanted.

Bars (ts = bar start; a bar's close is at ts + the data's bar interval)
  1. on_bar(t) runs at the close of bar t. Orders, cancels and amends it makes reach the venue at the
     open of the symbol's next bar t+1, in the order they were made: nothing fills within bar t.
     With several symbols, events go in time order (a close before an open at the same time), so an
     order made at one symbol's close reaches another symbol at its first open at or after that
     close, never a bar of it that opened earlier.
  2. At the open of t+1 a market order fills in full at the open price, moved against the order by
     `slippage_bps` (buys higher, sells lower, rounded to the tick away from the order). A limit order
     priced at or through that price fills there too (at the better of the two); post-only orders
     never take. The strategy is the taker (taker fee).
  3. A limit order that rests fills in full at its own price when a later bar trades through it:
     buys when the bar's low is strictly below the price, sells when its high is strictly above
     (touching is not enough: the queue ahead is assumed never to clear). The strategy is the maker
     (maker fee). Within a bar the path is open -> low -> high -> close when close >= open, else
     open -> high -> low -> close, so bids are tried first on an up bar, asks first on a down bar.
  4. Stop orders only trigger on the venue's last trade (the strategy's own fills); use limit or
     market orders on bars.

Trades (ts, price, qty, side per trade)
  1. An order reaches the venue `latency_ms` after the strategy made it (default 0: at once, still
     after the trade or timer that caused it).
  2. On arrival a market order fills in full at the last trade price moved by `slippage_bps`; a
     limit order at or through that price fills there (capped at its limit) as taker; post-only
     orders and other limits rest.
  3. A resting order fills at its own price, as maker, for at most the trade's quantity, when a
     later trade prints strictly through it (queue model "through", the default: sell trades below
     a bid, buy trades above an ask). With queue model "touch" a trade at exactly its price also
     fills it (when the trade's taker side is unknown or opposite to the order).
  4. Trades that cannot fill a resting order are skipped unless the strategy has on_trade; timers
     fire at their time between trades; the mark for PnL is the last trade.

Vectorised strategies (a `signals` method) on bars: the target position decided at each bar's close
is reached with one market order at the next bar's open, under rule 2; only bars where the target
is set cost an engine call.
"""

MARKET_ACCOUNT = "bt-market"
