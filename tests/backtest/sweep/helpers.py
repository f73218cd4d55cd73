"""Helpers of the sweep tests: data, the Ray test head's environment, running the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
from typer.testing import CliRunner

from tests.backtest.test_data_shapes import canonical
from tests.conftest import eventually
from tradsys.cli.app import app

HOUR_NS = 3600 * 10**9
T0_NS = 1_704_067_200 * 10**9  # 2024-01-01
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""The test head runs without a login token (it is ours, on loopback). The second makes Ray give
every process (head, workers, driver) the node address 127.0.0.1 and bind its ports there: without
it Ray replaces 127.0.0.1 with the machine's address, even in `--node-ip-address 127.0.0.1`."""
STRATEGIES = Path(__file__).with_name("strategies.py")


def hourly(rows: int = 900) -> pl.DataFrame:
    """`canonical`'s wave as hourly bars: over 30 days, so CAGR and Calmar have values."""
    return canonical(rows=rows).with_columns(pl.Series("ts", [T0_NS + i * HOUR_NS for i in range(rows)]))


def sweep_args(path: Path, *extra: str) -> list[str]:
    return ["backtest", "sweep", str(path), "--strategy", "sma_cross", "-p", "quantity=0.1", "--json", *extra]


def wait_lines(path: Path, count: int, timeout: float = 120) -> int:
    def enough() -> int:
        n = path.read_text().count("\n") if path.exists() else 0
        return n if n >= count else 0

    return eventually(enough, timeout=timeout)


def invoke(args: list[str]) -> dict[str, Any]:
    """The CLI run in this process; its JSON document."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def comparable(doc: dict[str, Any]) -> list[tuple[str, Any, Any, Any, Any]]:
    """A sweep's rows without what differs between two runs of it (their time, their order)."""
    return sorted((json.dumps(r["params"], sort_keys=True), r["metrics"], r["state"], r["error"], r["warnings"])
                  for r in doc["results"])
