"""An interrupted sweep keeps what finished, and `--resume` runs only the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.backtest.sweep.helpers import STRATEGIES, comparable, invoke, wait_lines
from tests.conftest import eventually


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def ctrl_c_raises() -> None:
    """In the child: SIGINT as a terminal sends it (a background job's parent may ignore it, and
    Python then leaves it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupted_sweep_resumes(bars_file: Path, tmp_path: Path) -> None:
    gate, out = tmp_path / "gate", tmp_path / "out"
    sweep = ["backtest", "sweep", str(bars_file), "-s", f"{STRATEGIES}:Gate", "--grid", "slow=8,9,10,11,12,13",
             "-p", "fast=3", "-p", "quantity=0.1", "-p", f"gate={gate}", "-p", "block=11", "--json"]
    args = [*sweep, "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "tradsys", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=ctrl_c_raises)
    try:
        wait_lines(out / "results.jsonl", 3)  # slow 8, 9, 10; the workers wait at 11 and 12 for the gate
        workers = children(proc.pid)  # the two workers, and multiprocessing's resource tracker
        assert len(workers) >= 2
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and json.loads(stdout)["error"]["exit_code"] == 130
    eventually(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), timeout=30)
    kept = pl.read_parquet(out / "results.parquet")
    assert sorted(kept["param_slow"].to_list()) == [8, 9, 10]

    gate.touch()
    resumed = invoke([*args, "--resume"])
    assert (resumed["ran"], resumed["skipped"]) == (3, 3)
    assert len((out / "results.jsonl").read_text().splitlines()) == 6
    assert pl.read_parquet(out / "results.parquet").height == 6
    whole = invoke([*sweep, "--workers", "1"])  # the same sweep, never interrupted
    assert comparable(resumed) == comparable(whole)


def test_resume_refuses_the_folder_of_another_sweep(bars_file: Path, tmp_path: Path) -> None:
    base = ["backtest", "sweep", str(bars_file), "-s", "sma_cross", "--grid", "fast=3", "-p", "slow=8", "--workers",
            "1", "--out", str(tmp_path), "--json"]
    invoke(base)
    from typer.testing import CliRunner

    from tradsys.cli.app import app

    again = CliRunner().invoke(app, base)
    assert again.exit_code == 2 and "--resume" in again.output
    other = CliRunner().invoke(app, [*base, "--resume", "--capital", "5000"])
    assert other.exit_code == 2 and "options differ" in other.output
    assert invoke([*base, "--resume"])["skipped"] == 1
