"""An example strategy that trades on peers' signals and publishes its own.

Live, enable the daemon's peer in config.toml,

    [p2p]
    enabled = true
    id = "tradsys"          # the peer id subscribers connect to
    # secret = "..."        # sign what strategies publish; ignore unsigned signals
    # senders = ["desk"]    # only signals from peers whose token's subject is listed

then start it and send it a signal through the daemon's peer:

    tradsys strategy start examples/strategies/signal_follower.py:SignalFollower --param quantity=0.01
    tradsys signals send --to tradsys '{"symbol":"BTC-USD","side":"buy","strength":0.9}'

A peer connected to the daemon's peer receives what the strategy publishes (`ctx.publish_signal`).
In a backtest, replay signals recorded with `tradsys signals listen --json > signals.jsonl`:

    tradsys backtest run bars.parquet -s examples/strategies/signal_follower.py:SignalFollower \
        -p quantity=0.01 --signals signals.jsonl
"""

from typing import Any

from tradsys.engine.strategy import FillData, Param, Strategy


class SignalFollower(Strategy):
    description = "Buys or sells `quantity` at market on each peer signal at least `min_strength` strong; publishes its fills."

    params = {
        "quantity": Param(float, 0.01, "order size in base units", min=0),
        "min_strength": Param(float, 0.5, "signals weaker than this (their `strength` field) are ignored", min=0),
    }

    def on_signal(self, signal: dict[str, Any]) -> None:
        # signal: symbol, side or value, time (epoch ms), sender (the peer id), and the sender's extra fields
        side = signal.get("side")
        if side is None or float(signal.get("strength", 1.0)) < self.p.min_strength:
            return
        self.ctx.log("signal", sender=signal.get("sender"), side=side)
        self.ctx.place(side, self.p.quantity, symbol=signal["symbol"])

    def on_fill(self, fill: FillData) -> None:
        self.ctx.publish_signal(fill.side, symbol=fill.symbol, price=str(fill.price), qty=str(fill.qty),
                                reason="filled")
