"""What `tradsys backtest sweep` shows: a live progress bar with the best runs so far (on stderr,
on a terminal, not under --json), and the tables of its results at the end (the CLI's tables:
fitted to a terminal, never cut when piped)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradsys.backtest.report import fmt
from tradsys.backtest.sweep import Objective, SweepReport
from tradsys.cli.output import table

LIVE_TOP = 5
"""Best runs so far shown under the progress bar."""
METRICS = (("total_return", "return", "pct"), ("sharpe", "sharpe", "num"), ("max_drawdown", "max dd", "pct"),
           ("trades", "trades", "int"), ("win_rate", "win rate", "pct"))
"""The metrics a results table shows, and the objective's when it is not one of them."""
OPTIONAL = ("win rate", "trades", "max dd", "return in", "return out", "to")
"""Columns left out first on a narrow terminal."""


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
            columns, cells = results_cells(self.rows, self.names, self.objective)
            best = Table(title="best so far")
            for name in columns:
                best.add_column(name, justify="right")
            for cell in cells:
                best.add_row(*cell)
            self.live.update(Group(self.progress, best))


def results_cells(rows: list[dict[str, Any]], names: list[str],
                  objective: Objective) -> tuple[list[str], list[list[str]]]:
    """(column names, cells) of ranked runs: their swept parameters, metrics and state."""
    metrics = list(METRICS)
    if objective.metric not in {m[0] for m in METRICS}:
        metrics.insert(0, (objective.metric, objective.metric, "num"))
    cells = [[str(r["params"].get(n, "")) for n in names]
             + [fmt(r["metrics"].get(key), kind) for key, _, kind in metrics]
             + [r["error"] or ("ok" if r["state"] == "stopped" else r["state"])] for r in rows]
    return [*names, *(label for _, label, _ in metrics), "state"], cells


def results_table(rows: list[dict[str, Any]], names: list[str], objective: Objective, title: str) -> Table:
    columns, cells = results_cells(rows, names, objective)
    return table(title, columns, cells, right=columns[:-1], optional=OPTIONAL)


def walk_forward_table(walk: dict[str, Any], names: list[str]) -> Table:
    metric = walk["objective"]
    label, kind = ("return", "pct") if metric == "total_return" else (metric, "num")
    folds = walk["folds"]
    days = (folds[-1]["out_of_sample"][1] - folds[0]["in_sample"][0]) / 86_400e9 if folds else 0
    when = "%Y-%m-%d" if days >= 7 else "%Y-%m-%d %H:%M"
    columns = ["fold", "in-sample from", "out-of-sample from", "to", *names, f"{label} in", f"{label} out"]
    if metric != "total_return":
        columns += ["return in", "return out"]
    cells = []
    for f in folds:
        params = f["params"] or {}
        row = [str(f["fold"]), stamp(f["in_sample"][0], when), stamp(f["out_of_sample"][0], when),
               stamp(f["out_of_sample"][1], when), *[str(params.get(n, "-")) for n in names],
               fmt(f["in_sample_value"], kind), fmt(f["out_of_sample_value"], kind)]
        if metric != "total_return":
            row += [fmt((f["in_sample_metrics"] or {}).get("total_return"), "pct"),
                    fmt((f["out_of_sample_metrics"] or {}).get("total_return"), "pct")]
        cells.append(row)
    title = (f"walk-forward: {len(folds)} folds, best {label} in-sample, then out-of-sample; mean {label} "
             f"in-sample {fmt(walk['in_sample_mean'], kind)}, out-of-sample {fmt(walk['out_of_sample_mean'], kind)}")
    return table(title, columns, cells, right=[c for c in columns if c != "fold"], optional=OPTIONAL)


def caption(report: SweepReport) -> str:
    text = f"{report.ran:,} run on {report.workers} at once ({report.where})"
    if report.skipped:
        text += f"; {report.skipped:,} finished before, kept (--resume)"
    if report.table is not None:
        text += f"; all rows in {report.table}"
    return text


def stamp(ns: int, when: str) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime(when)
