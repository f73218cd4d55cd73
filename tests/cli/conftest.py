"""Helpers for CLI tests: run `tradsys` in-process (fast) or as a real process, against the module's daemon."""

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import DaemonProcess, eventually
from tradsys.cli.app import app

Run = Callable[..., Result]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {"TRADSYS_HOME": str(home), "NO_COLOR": "1", "TRADSYS_TOKEN": "", "TRADSYS_ACCOUNT": ""}
    env.update(extra)
    return env


@pytest.fixture
def run(daemon: DaemonProcess) -> Run:
    """`run("order", "list", "--json")` -> Result with exit_code, stdout, stderr (in-process, like the real CLI)."""
    runner = CliRunner()

    def invoke(*args: str, **env: str) -> Result:
        environ = env_for(daemon.home, **env)
        return runner.invoke(app, list(args), env={k: (v or None) for k, v in environ.items()})

    return invoke


def tradsys(home: Path, *args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess:
    """The real `tradsys` process, for exit codes and stderr exactly as a shell sees them."""
    environ = {**os.environ, **env_for(home, **env)}
    environ = {k: v for k, v in environ.items() if v != ""}
    return subprocess.run([sys.executable, "-m", "tradsys", *args], env=environ, capture_output=True, text=True,
                          timeout=timeout)


def lines(proc: subprocess.Popen) -> "queue.Queue[str]":
    """The process's stdout lines, read on a thread so that waiting for one can time out."""
    out: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)
        out.put("")

    threading.Thread(target=read, daemon=True).start()
    return out


def best(run: Run, symbol: str = "BTC-USD") -> tuple[Decimal, Decimal]:
    """Best bid and ask, once the simulated market has quoted both sides."""
    import json

    def quoted() -> tuple[Decimal, Decimal] | None:
        book = json.loads(run("book", symbol, "--depth", "1", "--json").stdout)
        if book["bids"] and book["asks"]:
            return Decimal(book["bids"][0]["price"]), Decimal(book["asks"][0]["price"])
        return None

    return eventually(quoted, timeout=20)
