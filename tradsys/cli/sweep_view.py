"""What `tradsys backtest sweep` shows: a live progress bar with the best runs so far (on stderr,
on a terminal, not under --json), and the tables of its results at the end."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradsys.backtest.report import fmt
from tradsys.backtest.sweep import Objective, SweepReport

LIVE_TOP = 5
"""Best runs so far shown under the progress bar."""
COLUMNS = (("total_return", "total return", "pct"), ("sharpe", "sharpe", "num"), ("max_drawdown", "max dd", "pct"),
           ("trades", "trades", "int"), ("win_rate", "win rate", "pct"))
"""The metrics a results table shows, and the objective's when it is not one of them."""


class LiveView:
    """The progress bar and the best runs so far; `row` is the sweep's `on_row`."""

    def __init__(self, console: Console, objective: Objective, names: list[str]) -> None:
        self.objective, self.names = objective, names
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console)
        self.task = self.progress.add_task("sweep", total=None)
        self.rows: list[dict[str, Any]] = []
        self.live = Live(Group(self.progress), console=console, transient=True, refresh_per_second=4)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def start(self, total: int, workers: int, where: str) -> None:
        self.progress.update(self.task, total=total, description=f"sweep ({workers} at once, {where})")

    def row(self, row: dict[str, Any], skipped: bool) -> None:
        self.progress.advance(self.task)
        if self.objective.value(row) is not None:
            self.rows = self.objective.ranked([*self.rows, row])[:LIVE_TOP]
            self.live.update(Group(self.progress, results_table(self.rows, self.names, self.objective,
                                                                "best so far")))


def results_table(rows: list[dict[str, Any]], names: list[str], objective: Objective, title: str) -> Table:
    table = Table(title=title)
    for name in names:
        table.add_column(name, justify="right")
    columns = list(COLUMNS)
    if objective.metric not in {c[0] for c in COLUMNS}:
        columns.insert(0, (objective.metric, objective.metric, "num"))
    for _, label, _ in columns:
        table.add_column(label, justify="right")
    table.add_column("state", justify="right")
    for r in rows:
        m = r["metrics"]
        table.add_row(*[str(r["params"].get(n, "")) for n in names], *[fmt(m.get(key), kind) for key, _, kind in columns],
                      escape(r["error"][:40]) if r["error"] else "ok" if r["state"] == "stopped" else r["state"])
    return table


def walk_forward_table(walk: dict[str, Any], names: list[str]) -> Table:
    metric = walk["objective"]
    table = Table(title=f"walk-forward: {len(walk['folds'])} folds, best {metric} in-sample, then out-of-sample")
    for col in ("fold", "in-sample", "out-of-sample", *names, f"{metric} in", f"{metric} out", "return in",
                "return out"):
        table.add_column(col, justify="right")
    for f in walk["folds"]:
        params = f["params"] or {}
        table.add_row(str(f["fold"]), span(f["in_sample"]), span(f["out_of_sample"]),
                      *[str(params.get(n, "-")) for n in names], fmt(f["in_sample_value"], "num"),
                      fmt(f["out_of_sample_value"], "num"),
                      fmt((f["in_sample_metrics"] or {}).get("total_return"), "pct"),
                      fmt((f["out_of_sample_metrics"] or {}).get("total_return"), "pct"))
    table.caption = (f"mean {metric}: in-sample {fmt(walk['in_sample_mean'], 'num')}, "
                     f"out-of-sample {fmt(walk['out_of_sample_mean'], 'num')}")
    return table


def caption(report: SweepReport) -> str:
    text = f"{report.ran:,} run on {report.workers} at once ({report.where})"
    if report.skipped:
        text += f"; {report.skipped:,} finished before, kept (--resume)"
    if report.table is not None:
        text += f"; all rows in {report.table}"
    return text


def span(window: list[int]) -> str:
    start, end = (datetime.fromtimestamp(t / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M") for t in window)
    return f"{start} to {end}"
