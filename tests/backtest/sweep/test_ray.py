"""Sweeps on a Ray head that the test starts on loopback: the same rows as the local sweep.

Sweeps that may print Ray's messages (a worker's death) run the CLI in a process of its own: this
process stays connected to the head for the session, and Ray prints on the driver's stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.backtest.sweep.helpers import RAY_ENV, STRATEGIES, comparable, invoke, sweep_args
from tests.backtest.sweep.test_optuna import SEARCH, trials
from tradsys.cli.app import app

GRID = ("--grid", "fast=3,5", "--grid", "slow=8,13,21", "--timerange", "20240105-")


def tradsys(*args: str) -> dict[str, Any]:
    """The CLI in a process of its own: it connects to the cluster, and disconnects, itself."""
    done = subprocess.run([sys.executable, "-m", "tradsys", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **RAY_ENV})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_sweep_on_ray_equals_the_local_one(ray_head: str, bars_file: Path) -> None:
    local = invoke(sweep_args(bars_file, *GRID, "--workers", "2"))
    assert comparable(tradsys(*sweep_args(bars_file, *GRID, "--ray", ray_head))) == comparable(local)


def test_an_optuna_search_on_ray_equals_the_local_one(ray_head: str, bars_file: Path) -> None:
    local = invoke(sweep_args(bars_file, *SEARCH, "--workers", "1"))
    on_ray = invoke(sweep_args(bars_file, *SEARCH, "--ray", ray_head))
    assert trials(on_ray) == trials(local)


def test_a_ray_worker_that_dies_is_retried(ray_head: str, bars_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "died"
    doc = tradsys("backtest", "sweep", str(bars_file), "-s", f"{STRATEGIES}:DiesOnce", "--grid", "slow=8,9,10",
                  "-p", "fast=3", "-p", f"marker={marker}", "-p", "die_at=9", "--ray", ray_head, "--json")
    assert marker.exists()
    assert all(r["state"] == "stopped" and r["metrics"]["fills"] > 0 for r in doc["results"]), doc["results"]


def test_without_ray_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, bars_file: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    result = CliRunner().invoke(app, sweep_args(bars_file, "--grid", "fast=3", "--ray", "auto"))
    assert result.exit_code == 2
    assert "pip install 'tradsys[ray]'" in result.output
