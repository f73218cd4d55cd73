"""Local sweeps: worker processes give what one process gives, and what `backtest run` gives."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from tests.backtest.sweep.helpers import STRATEGIES, comparable, invoke, sweep_args
from tradsys.backtest.sweep import objective
from tradsys.cli.app import app
from tradsys.cli.sweep_view import LiveView

WINDOW = ("--timerange", "20240105-20240201", "--timeframe", "2h")


def test_a_local_sweep_equals_a_serial_run_and_backtest_run(bars_file: Path) -> None:
    args = sweep_args(bars_file, "--grid", "fast=3,5", "--grid", "slow=8,13", *WINDOW)
    local = invoke([*args, "--workers", "2"])
    serial = invoke([*args, "--workers", "1"])
    assert len(local["results"]) == 4 and all(r["metrics"]["fills"] > 0 for r in local["results"])
    assert comparable(local) == comparable(serial)
    for row in local["results"]:
        params = [f"--param={k}={v}" for k, v in row["params"].items()]
        run = invoke(["backtest", "run", str(bars_file), "-s", "sma_cross", *params, *WINDOW, "--json"])
        assert run["metrics"] == row["metrics"], row["params"]
    sharpes = [r["metrics"]["sharpe"] for r in local["results"]]
    assert sharpes == sorted(sharpes, reverse=True) and local["best"] == local["results"][0]


def test_a_worker_that_dies_is_replaced(bars_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "died"
    doc = invoke(["backtest", "sweep", str(bars_file), "-s", f"{STRATEGIES}:DiesOnce", "--grid", "slow=8,9,10",
                  "-p", "fast=3", "-p", f"marker={marker}", "-p", "die_at=9", "--workers", "2", "--json"])
    assert marker.exists()  # a worker process did die, running slow=9
    assert sorted(r["params"]["slow"] for r in doc["results"]) == ["10", "8", "9"]
    assert all(r["state"] == "stopped" and r["metrics"]["fills"] > 0 for r in doc["results"]), \
        json.dumps(doc["results"])[:2000]


def test_the_table_and_the_live_view(bars_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["backtest", "sweep", str(bars_file), "-s", "sma_cross", "--grid", "fast=3,5",
                                      "-p", "slow=8", "--workers", "1", "--progress", "--out", str(tmp_path),
                                      "--objective", "calmar"])
    assert result.exit_code == 0, result.output
    assert "2 runs, ranked by calmar (max)" in result.stdout and "results.parquet" in result.stdout
    screen = Console(file=io.StringIO(), force_terminal=True, width=100)
    row = {"params": {"fast": "3"}, "metrics": {"calmar": 1.25, "total_return": 0.1}, "state": "stopped", "error": ""}
    with LiveView(screen, objective("calmar"), ["fast"]) as view:
        view.start(2, 1, "here")
        view.row(row, False)
        view.live.refresh()
    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "1/2" in shown and "best so far" in shown and "1.250" in shown
