"""Rendering for `tradsys watch`: a rich Layout of panels, each sized by the space it gets.

Panels draw to the height rich gives them (`options.height`), so the screen fills and follows
the terminal as it is resized; nothing here touches the network.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tradsys.cli.output import when
from tradsys.cli.watch_feed import State

SIDE = {"buy": "green", "sell": "red"}
JSON_DEPTH = 10
"""Book levels per side in `watch --json`."""


class Ladder:
    """Asks over bids around the spread, as many levels as fit, sizes drawn as bars."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        s = self.state
        height = options.height or 21
        per_side = max(1, (height - 2) // 2)
        asks = sorted(s.asks.items())[:per_side]
        bids = sorted(s.bids.items(), reverse=True)[:per_side]
        width = options.max_width
        bar_width = max(4, width - 30)
        biggest = max((Decimal(q) for _, (q, _n) in asks + bids), default=Decimal(1)) or Decimal(1)
        mine = {Decimal(o["price"]) for o in s.orders.values() if o.get("price")}

        def row(price: Decimal, qty: str, count: int, style: str) -> Text:
            cells = max(1, int(Decimal(qty) / biggest * bar_width))
            mark = "*" if price in mine else " "
            line = Text(f"{mark}{price:>12} {qty:>11} ", style=style)
            line.append("█" * cells, style=f"{style} dim" if count == 0 else style)
            return line

        lines: list[Text] = [Text(f" {'price':>12} {'size':>11}   * own", style="bold")]
        lines += [Text("")] * (per_side - len(asks))
        lines += [row(p, q, n, "red") for p, (q, n) in reversed(asks)]
        if asks and bids:
            spread = asks[0][0] - bids[0][0]
            mid = (asks[0][0] + bids[0][0]) / 2
            lines.append(Text(f" spread {spread} ({spread / mid * 10000:.1f} bps)  mid {mid.normalize()}",
                              style="bold yellow"))
        else:
            lines.append(Text(" no two-sided market", style="bold yellow"))
        lines += [row(p, q, n, "green") for p, (q, n) in bids]
        for line in lines[:height]:
            line.truncate(width)  # one row per line: a wrapped line would push the bids off the panel
            yield line


class Chart:
    """Candles of recent bars, one per column, scaled to the panel."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = max(3, (options.height or 10) - 1)
        axis = 12
        width = max(4, options.max_width - axis)
        bars = self.state.bars[-width:]
        if not bars:
            yield Text("waiting for trades…", style="dim")
            return
        highs = [Decimal(b["high"]) for b in bars]
        lows = [Decimal(b["low"]) for b in bars]
        top, bottom = max(highs), min(lows)
        span = (top - bottom) or Decimal(1)

        def level(price: Decimal) -> int:
            return int((price - bottom) / span * (height - 1) + Decimal("0.5"))

        grid = [[(" ", "")] * len(bars) for _ in range(height)]
        for col, bar in enumerate(bars):
            o, c = Decimal(bar["open"]), Decimal(bar["close"])
            style = "green" if c >= o else "red"
            lo, hi = level(Decimal(bar["low"])), level(Decimal(bar["high"]))
            body_lo, body_hi = sorted((level(o), level(c)))
            for y in range(lo, hi + 1):
                grid[y][col] = ("█" if body_lo <= y <= body_hi else "│", style)
        for y in range(height - 1, -1, -1):
            label = f"{top:>11} " if y == height - 1 else f"{bottom:>11} " if y == 0 else " " * axis
            line = Text(label, style="dim")
            for char, style in grid[y]:
                line.append(char, style=style)
            yield line
        last = bars[-1]
        yield Text(f"{len(bars)} × {last['interval']} bars  last {last['close']}  vol {last['volume']}", style="dim")


class Tape:
    """The newest trades first, as many as fit."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or 10
        trades = list(self.state.trades)[-height:][::-1]
        if not trades:
            yield Text("no trades yet", style="dim")
            return
        for t in trades:
            style = SIDE.get(t["taker_side"] or "", "")
            yield Text(f"{when(t['ts_ns'])[-12:]} {t['price']:>12} {t['qty']:>10} {t['taker_side'] or '':<4}", style=style)


class AlertList:
    """Alerts newest first, two lines each, as many as fit: firing red, pending yellow, resolved dimmed."""

    STYLE = {"firing": "bold red", "pending": "yellow", "resolved": "dim"}

    def __init__(self, state: State) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        alerts = self.state.newest_alerts()[:max(1, (options.height or 6) // 2)]
        if not alerts:
            yield Text("no alerts", style="dim")
            return
        for a in alerts:
            style = self.STYLE.get(a["state"], "")
            stamp = a["resolved_ns"] if a["state"] == "resolved" else a["started_ns"]
            labels = "".join(f" {k}={v}" for k, v in sorted(a["labels"].items()))
            for text in (f"{a['state']:<8} {a['severity']:<8} {a['rule']}{labels}", f"  {when(stamp)} {a['summary']}"):
                line = Text(text, style=style)
                line.truncate(options.max_width)
                yield line


def position_panel(s: State) -> Table:
    out = Table.grid(padding=(0, 1))
    out.add_column(style="bold")
    out.add_column(justify="right")
    p = s.position
    if p is None:
        out.add_row("position", "flat")
        return out

    def money(value: str) -> Text:
        number = Decimal(value or "0")
        return Text(value or "0", style="green" if number > 0 else "red" if number < 0 else "")

    qty = Decimal(p["qty"] or "0")
    out.add_row("position", Text(p["qty"], style="green" if qty > 0 else "red" if qty < 0 else ""))
    out.add_row("avg price", p["avg_price"] or "—")
    out.add_row("mark", p["mark_price"] or "—")
    out.add_row("unrealized", money(p["unrealized_pnl"]))
    out.add_row("realized", money(p["realized_pnl"]))
    out.add_row("fees", p["fees"])
    return out


def orders_panel(s: State, limit: int) -> Table | Text:
    orders = sorted(s.orders.values(), key=lambda o: (o["created_ns"], o["order_id"]))
    if not orders:
        return Text("no open orders", style="dim")
    out = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (("id", "left"), ("side", "left"), ("price", "right"), ("open", "right"), ("filled", "right")):
        out.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for o in orders[-limit:]:
        out.add_row(o["order_id"], Text(o["side"] or "", style=SIDE.get(o["side"] or "", "")), o["price"] or "mkt",
                    o["open_qty"], o["filled_qty"])
    return out


def risk_panel(s: State) -> Group:
    lines: list[Text] = []
    kill = s.kill or {}
    if kill.get("on"):
        lines.append(Text(f"KILL SWITCH ON: {kill.get('reason', '')}", style="bold white on red"))
    else:
        lines.append(Text("kill switch off", style="green"))
    r = s.symbol_risk or {}
    if r.get("halted"):
        lines.append(Text(f"HALTED: {r.get('halt_reason', '')}", style="bold red"))
    else:
        lines.append(Text(f"{s.symbol} trading", style="green"))
    breaker = r.get("circuit_breaker") or {}
    if breaker.get("state") == "tripped":
        lines.append(Text(f"breaker TRIPPED: {breaker.get('reason', '')}", style="bold red"))
    else:
        lines.append(Text("breaker armed", style="green"))
    return Group(*lines)


def header(s: State, symbols: list[str], account: str | None, clock: datetime) -> Text:
    line = Text()
    for i, name in enumerate(symbols, 1):
        style = "bold reverse" if name == s.symbol else "dim"
        line.append(f" {i} {name} ", style=style)
        line.append(" ")
    last = s.last_price()
    line.append(f"  last {last or '—'}", style="bold")
    line.append(f"  account {account or '*'}")
    if s.errors:
        line.append(f"  reconnecting: {next(iter(s.errors.values()))}", style="bold red")
    else:
        line.append("  live", style="bold green")
    line.append(f"  {clock:%H:%M:%S}   q quit · tab/1-9 symbol", style="dim")
    return line


def render(s: State, symbols: list[str], account: str | None, clock: datetime | None = None) -> Layout:
    root = Layout()
    root.split_column(Layout(name="header", size=1), Layout(name="body"))
    root["header"].update(header(s, symbols, account, clock or datetime.now()))
    body = root["body"]
    body.split_row(Layout(name="book", ratio=3), Layout(name="middle", ratio=4), Layout(name="side", ratio=3))
    body["book"].update(Panel(Ladder(s), title=f"{s.symbol} book", border_style="blue"))
    body["middle"].split_column(Layout(name="chart", ratio=1), Layout(name="tape", ratio=1))
    body["chart"].update(Panel(Chart(s), title=f"price ({s.interval} bars)", border_style="blue"))
    body["tape"].update(Panel(Tape(s), title="trades", border_style="blue"))
    body["side"].split_column(Layout(name="position", size=8), Layout(name="orders", ratio=2),
                              Layout(name="risk", size=5), Layout(name="alerts", ratio=1, minimum_size=3))
    body["position"].update(Panel(position_panel(s), title=f"position {account or '*'}", border_style="blue"))
    body["orders"].update(Panel(orders_panel(s, 30), title="open orders", border_style="blue"))
    body["risk"].update(Panel(risk_panel(s), title="risk", border_style="blue"))
    body["alerts"].update(Panel(AlertList(s), title="alerts", border_style="blue"))
    return root


def json_state(s: State, levels: int = JSON_DEPTH) -> dict[str, Any]:
    """The view as data, for `watch --json` (one line per second)."""
    return {
        "symbol": s.symbol,
        "seq": s.seq,
        "bids": [{"price": str(p), "qty": q, "order_count": n} for p, (q, n) in sorted(s.bids.items(), reverse=True)[:levels]],
        "asks": [{"price": str(p), "qty": q, "order_count": n} for p, (q, n) in sorted(s.asks.items())[:levels]],
        "last_price": s.last_price(),
        "trades": list(s.trades)[-10:],
        "open_orders": list(s.orders.values()),
        "position": s.position,
        "kill_switch": s.kill,
        "risk": s.symbol_risk,
        "alerts": s.newest_alerts(),
        "connected": not s.errors,
        "errors": s.errors,
    }

