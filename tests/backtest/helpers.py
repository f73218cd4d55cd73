"""Hand-made data and a scripted strategy for fill-rule tests."""

from typing import Any

import polars as pl

from tradsys.engine.strategy import Param, Strategy

MIN = 60_000_000_000
SEC = 1_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01


def bars(rows: list[tuple[float, float, float, float]], symbol: str = "BTC-USD") -> pl.DataFrame:
    return pl.DataFrame({
        "ts": [T0 + i * MIN for i in range(len(rows))], "symbol": [symbol] * len(rows),
        "open": [r[0] for r in rows], "high": [r[1] for r in rows], "low": [r[2] for r in rows],
        "close": [r[3] for r in rows], "volume": [1.0] * len(rows),
    })


def trades(rows: list[tuple[float, float, float, str | None]], symbol: str = "BTC-USD") -> pl.DataFrame:
    """(seconds after T0, price, qty, side)."""
    return pl.DataFrame({
        "ts": [T0 + int(r[0] * SEC) for r in rows], "symbol": [symbol] * len(rows),
        "price": [r[1] for r in rows], "qty": [r[2] for r in rows], "side": [r[3] for r in rows],
    }, schema_overrides={"side": pl.String})


class Scripted(Strategy):
    """Runs `script[k]` (a list of context calls) at the k-th callback: bars count on_bar calls,
    trades count on_start (k=0) then on_fill calls."""

    params = {"tag": Param(str, "", "unused")}
    script: dict[int, list[tuple[str, tuple, dict]]] = {}

    def on_start(self) -> None:
        self.k = 0
        self.ids: list[str] = []
        self.fills: list[Any] = []
        self.updates: list[Any] = []
        if type(self).mode == "trades":
            self._run(0)

    mode = "bars"

    def _run(self, k: int) -> None:
        for name, args, kw in self.script.get(k, []):
            result = getattr(self.ctx, name)(*args, **kw)
            if name in ("buy", "sell", "place"):
                self.ids.append(result)

    def on_bar(self, bar: Any) -> None:
        self._run(self.k)
        self.k += 1

    def on_fill(self, fill: Any) -> None:
        self.fills.append(fill)
        if type(self).mode == "trades":
            self.k += 1
            self._run(self.k)

    def on_order(self, order: Any) -> None:
        self.updates.append((order.id, order.status, order.reason))


def scripted(script: dict[int, list[tuple[str, tuple, dict]]], mode: str = "bars") -> type[Scripted]:
    return type("Script", (Scripted,), {"script": script, "mode": mode})
