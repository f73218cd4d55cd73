"""`tradsys watch` in a real terminal: tmux runs it, sends keys and reads the screen."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import env_for, tradsys
from tests.conftest import DaemonProcess, eventually, start_daemon

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


class Screen:
    def __init__(self, name: str) -> None:
        self.name = name

    def text(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def resize(self, width: int, height: int) -> None:
        subprocess.run(["tmux", "resize-window", "-t", self.name, "-x", str(width), "-y", str(height)], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)

    def shows(self, pattern: str, timeout: float = 20) -> str:
        def found() -> str:
            screen = self.text()
            assert re.search(pattern, screen), f"{pattern!r} not on screen:\n{screen}"
            return screen
        return eventually(found, timeout=timeout, interval=0.2)


def open_watch(home: Path, *args: str, width: int = 150, height: int = 45) -> Screen:
    """`tradsys watch ARGS` in a detached tmux session; the shell line after it reports the exit code."""
    name = f"tradsys-watch-{uuid.uuid4().hex[:8]}"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in env_for(home).items() if v)
    command = (f"env TERM=xterm-256color {env} {shlex.quote(sys.executable)} -m tradsys watch {shlex.join(args)}; "
               f"echo WATCH-EXITED-$?; sleep 600")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), command], check=True,
                   env={**os.environ, "TERM": "xterm-256color"})
    return Screen(name)


@pytest.fixture
def screen(daemon: DaemonProcess) -> Iterator[Screen]:
    view = open_watch(daemon.home, "BTC-USD", "--account", "w1")
    try:
        yield view
    finally:
        view.close()


def position_qty(text: str) -> str | None:
    match = re.search(r"position\s+(-?[0-9.]+)\s", text)
    return match[1] if match else None


def test_watch_shows_ladder_tape_position_and_switches_symbols(screen: Screen, daemon: DaemonProcess) -> None:
    home = daemon.home
    first = screen.shows(r"BTC-USD book")
    screen.shows(r"spread [0-9.]+ \(")                     # the ladder, around its spread
    tape = screen.shows(r"\d\d:\d\d:\d\d\.\d{3}\s+[0-9.]+\s+[0-9.]+ (buy|sell)")  # the trades tape
    assert "position w1" in first and "no alerts" in first and "kill switch off" in first
    screen.shows(r"\d+ × 1s bars")                         # the chart has bars
    screen.shows(r"position\s+flat")

    # the view updates by itself: the tape moves on
    eventually(lambda: screen.text() != tape and re.findall(r"\d\d:\d\d:\d\d\.\d{3}", screen.text()), timeout=15)

    bought = tradsys(home, "order", "place", "BTC-USD", "buy", "0.01", "--account", "w1")
    assert bought.returncode == 0, bought.stderr
    eventually(lambda: position_qty(screen.text()) == "0.01", timeout=15)
    screen.shows(r"unrealized\s+-?[0-9.]+")

    book = tradsys(home, "book", "BTC-USD", "--depth", "1", "--json")
    import json
    from decimal import Decimal
    bid = Decimal(json.loads(book.stdout)["bids"][0]["price"])
    rest = tradsys(home, "order", "place", "BTC-USD", "buy", "0.02", "--price", str(bid - 100), "--account", "w1",
                   "--json")
    oid = json.loads(rest.stdout)["order"]["order_id"]
    screen.shows(rf"\b{oid}\s+buy\s+{re.escape(str(bid - 100))}")   # own open order
    tradsys(home, "order", "cancel", oid)
    eventually(lambda: not re.search(rf"\b{oid}\s+buy", screen.text()), timeout=15)

    screen.keys("Tab")
    screen.shows(r"ETH-USD book")
    screen.keys("3")
    screen.shows(r"SOL-USD book")
    screen.keys("1")
    screen.shows(r"BTC-USD book")
    eventually(lambda: position_qty(screen.text()) == "0.01", timeout=15)

    screen.resize(100, 30)
    screen.shows(r"BTC-USD book")
    eventually(lambda: max(len(line) for line in screen.text().splitlines()) <= 100)

    screen.keys("q")
    screen.shows(r"WATCH-EXITED-0")
    assert "Traceback" not in screen.text()


def test_watch_reconnects_when_the_daemon_restarts(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home", "--seed", "4")
    screen = open_watch(daemon.home, "ETH-USD", height=40)
    again = None
    try:
        screen.shows(r"ETH-USD book.*\n(.|\n)*spread")
        screen.shows(r"\blive\b")
        daemon.kill(signal.SIGKILL)
        screen.shows(r"reconnecting")
        again = start_daemon(daemon.home, "--seed", "4", grpc_port=daemon.grpc_port, http_port=daemon.http_port)
        screen.shows(r"\blive\b", timeout=30)
        screen.shows(r"spread [0-9.]+ \(")
        screen.keys("q")
        screen.shows(r"WATCH-EXITED-0")
    finally:
        screen.close()
        if again is not None:
            again.kill(signal.SIGTERM)
