"""`tradsys watch`: its book and alert bookkeeping and the watch checker on hand-made inputs, then the
real thing: tmux runs it against a daemon, sends keys and reads the screen; `--json` is read line by line."""

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.watch_check import Book, Checker, book_of
from tests.cli.conftest import Run, best, env_for, lines, tradsys
from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.cli.watch_feed import ALERTS_KEPT, SeqGap, State, apply_book, note_alert
from tradsys.cli.watch_view import AlertList, Ladder, json_state
from tradsys.proto import marketdata_pb2 as md

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


# -- the book a StreamBook subscriber keeps ----------------------------------------------------------

def level(price: str, qty: str, count: int = 1) -> md.BookLevel:
    return md.BookLevel(price=price, qty=qty, order_count=count)


def snapshot(seq: int, bids: list[md.BookLevel], asks: list[md.BookLevel]) -> md.BookEvent:
    return md.BookEvent(snapshot=md.BookSnapshot(symbol="BTC-USD", seq=seq, bids=bids, asks=asks))


def update(seq: int, bids: tuple[md.BookLevel, ...] = (), asks: tuple[md.BookLevel, ...] = ()) -> md.BookEvent:
    return md.BookEvent(update=md.BookUpdate(symbol="BTC-USD", seq=seq, bids=bids, asks=asks))


def sides(s: State) -> tuple[dict[str, str], dict[str, str]]:
    return ({str(p): q for p, (q, _) in s.bids.items()}, {str(p): q for p, (q, _) in s.asks.items()})


def test_a_snapshot_replaces_the_book_and_an_update_replaces_levels_by_price() -> None:
    s = State("BTC-USD", None, "1s")
    apply_book(s, snapshot(4, [level("99", "1")], [level("101", "2")]))
    apply_book(s, snapshot(7, [level("98", "3"), level("97", "1")], [level("102", "1")]))
    assert sides(s) == ({"98": "3", "97": "1"}, {"102": "1"}) and s.seq == 7
    apply_book(s, update(8, bids=(level("98", "0"), level("97", "5"), level("96.5", "2")), asks=(level("101", "1"),)))
    assert sides(s) == ({"97": "5", "96.5": "2"}, {"101": "1", "102": "1"}) and s.seq == 8


def test_an_update_already_applied_is_ignored() -> None:
    s = State("BTC-USD", None, "1s")
    apply_book(s, snapshot(7, [level("98", "3")], [level("102", "1")]))
    apply_book(s, update(7, bids=(level("98", "0"),)))
    apply_book(s, update(5, asks=(level("90", "1"),)))
    assert sides(s) == ({"98": "3"}, {"102": "1"}) and s.seq == 7


def test_an_update_after_a_gap_asks_for_a_fresh_snapshot() -> None:
    s = State("BTC-USD", None, "1s")
    apply_book(s, snapshot(7, [level("98", "3")], [level("102", "1")]))
    with pytest.raises(SeqGap):
        apply_book(s, update(9, bids=(level("98", "0"),)))
    assert sides(s) == ({"98": "3"}, {"102": "1"}) and s.seq == 7


def test_the_ladder_keeps_each_line_to_one_row_in_a_narrow_panel() -> None:
    s = State("BTC-USD", None, "1s", bids={Decimal("60010.5"): ("0.294", 1)}, asks={Decimal("60006"): ("0.417", 1)})
    console = Console(width=30)
    shown = ["".join(segment.text for segment in line)
             for line in console.render_lines(Ladder(s), console.options.update(height=4))]
    assert ["price" in shown[0], "60006" in shown[1], "spread -4.5" in shown[2], "60010.5" in shown[3]] == [True] * 4


# -- alerts ------------------------------------------------------------------------------------------

def alert(id: str, state: str, started: int, resolved: int = 0, severity: str = "critical") -> dict[str, Any]:
    return {"id": id, "rule": id, "severity": severity, "state": state, "labels": {}, "summary": f"{id} summary",
            "started_ns": started, "resolved_ns": resolved, "acked": False, "value": "1"}


def test_an_alert_keeps_its_latest_transition_whatever_order_they_arrive_in() -> None:
    alerts: dict[str, dict[str, Any]] = {}
    note_alert(alerts, alert("kill", "firing", 10))
    note_alert(alerts, alert("kill", "resolved", 10, 20))
    note_alert(alerts, alert("kill", "firing", 10))            # a stream opening repeats what was active
    assert alerts["kill"]["state"] == "resolved"
    note_alert(alerts, alert("kill", "pending", 30))           # the next episode
    assert alerts["kill"]["state"] == "pending"


def test_alerts_are_bounded_and_the_oldest_resolved_go_first() -> None:
    alerts: dict[str, dict[str, Any]] = {}
    note_alert(alerts, alert("old-firing", "firing", 1))
    for i in range(ALERTS_KEPT + 5):
        note_alert(alerts, alert(f"flap-{i}", "resolved", 100 + i, 200 + i))
    assert len(alerts) == ALERTS_KEPT
    assert "old-firing" in alerts and "flap-0" not in alerts and f"flap-{ALERTS_KEPT + 4}" in alerts


def test_the_alerts_panel_and_json_show_the_newest_first_firing_red_resolved_dim() -> None:
    s = State("BTC-USD", None, "1s")
    for doc in (alert("kill_switch_on", "firing", 50), alert("journal_behind", "resolved", 10, 40),
                alert("market_data_stale", "pending", 45, severity="warning")):
        note_alert(s.alerts, doc)
    console = Console(width=80)
    shown = list(AlertList(s).__rich_console__(console, console.options.update(height=6)))
    assert [(line.plain.split()[:3], line.style) for line in shown[::2]] == [
        (["firing", "critical", "kill_switch_on"], "bold red"),
        (["pending", "warning", "market_data_stale"], "yellow"),
        (["resolved", "critical", "journal_behind"], "dim"),
    ]
    assert shown[1].plain.endswith("kill_switch_on summary") and shown[1].style == "bold red"
    assert [a["rule"] for a in json_state(s)["alerts"]] == ["kill_switch_on", "market_data_stale", "journal_behind"]


# -- the watch checker (bench/watch_check.py) --------------------------------------------------------

def book(seq: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Book:
    return book_of({"seq": seq, "bids": [{"price": p, "qty": q, "order_count": 1} for p, q in bids],
                    "asks": [{"price": p, "qty": q, "order_count": 1} for p, q in asks]})


def test_the_checker_passes_a_watch_that_follows_the_book() -> None:
    checker = Checker(max_lag=3)
    checker.book(0.0, book(5, [("99", "1")], [("101", "1")]))
    checker.watch(0.5, book(5, [("99", "1")], [("101", "1")]))
    checker.book(1.0, book(6, [], [("100.5", "2")]))
    checker.watch(2.0, book(6, [], [("100.5", "2")]))
    checker.watch(3.0, book(7, [("100", "1")], [("100.5", "2")]))
    r = checker.report
    assert (r.documents, r.compared, r.violations, r.max_lag) == (3, 2, 0, 0.0)


@pytest.mark.parametrize("docs, counts", [
    ([book(5, [("101", "1")], [("101", "1")])], {"crossed": 1}),
    ([book(5, [("102", "1")], [("101", "1")])], {"crossed": 1}),
    ([book(5, [("99", "1")], [("101", "1")]), book(4, [("99", "1")], [("101", "1")])], {"backwards": 1}),
    ([book(7, [("99", "1"), ("98", "1")], [("101", "1")])], {"wrong_levels": 1}),   # a removal was lost
    ([book(7, [("99", "2")], [("101", "1")])], {"wrong_levels": 1}),
])
def test_the_checker_finds_crossed_backwards_and_wrong_books(docs: list[Book], counts: dict[str, int]) -> None:
    checker = Checker(max_lag=3)
    checker.book(0.0, book(7, [("99", "1")], [("101", "1")]))
    for doc in docs:
        checker.watch(1.0, doc)
    r = checker.report
    assert {k: getattr(r, k) for k in ("crossed", "backwards", "wrong_levels", "behind")} == {
        "crossed": 0, "backwards": 0, "wrong_levels": 0, "behind": 0, **counts}
    assert r.problems


def test_the_checker_finds_a_watch_that_stays_behind() -> None:
    checker = Checker(max_lag=3)
    checker.book(10.0, book(8, [("99", "1")], [("101", "1")]))
    checker.watch(12.0, book(7, [("99", "1")], [("101", "1")]))
    assert checker.report.behind == 0 and checker.report.max_lag == 2.0
    checker.book(13.0, book(9, [("99", "1")], [("101", "1")]))
    checker.watch(13.5, book(7, [("99", "1")], [("101", "1")]))
    assert checker.report.behind == 1 and checker.report.max_lag == 3.5


# -- the real thing ----------------------------------------------------------------------------------

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
        """The screen once `pattern` is on it. A capture may catch a frame half drawn, so every
        expectation is waited for on its own rather than read from a screen captured for another."""
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


TRADE = r"(\d\d:\d\d:\d\d\.\d{3})\s+[0-9.]+\s+[0-9.]+ (?:buy|sell)"
"""A line of the trades tape."""


@needs_tmux
def test_watch_shows_ladder_tape_position_and_switches_symbols(screen: Screen, daemon: DaemonProcess, run: Run) -> None:
    home = daemon.home
    screen.shows(r"BTC-USD book")
    screen.shows(r"spread [0-9.]+ \(")                     # the ladder, around its spread
    tape = set(re.findall(TRADE, screen.shows(TRADE)))
    for panel in ("position w1", "kill switch off", "─ alerts ─", r"\d+ × 1s bars", r"position\s+flat"):
        screen.shows(panel)

    # the view updates by itself: trades it had not shown come onto the tape
    eventually(lambda: set(re.findall(TRADE, screen.text())) - tape, timeout=15)

    bought = tradsys(home, "order", "place", "BTC-USD", "buy", "0.01", "--account", "w1")
    assert bought.returncode == 0, bought.stderr
    eventually(lambda: position_qty(screen.text()) == "0.01", timeout=15)
    screen.shows(r"unrealized\s+-?[0-9.]+")

    bid, _ = best(run)
    far = (bid * Decimal("0.97")).quantize(Decimal("0.01"))   # the market will not come down to it meanwhile
    rest = tradsys(home, "order", "place", "BTC-USD", "buy", "0.02", "--price", str(far), "--account", "w1", "--json")
    assert rest.returncode == 0, rest.stderr
    order = json.loads(rest.stdout)["order"]
    assert order["status"] == "new", order
    screen.shows(rf"\b{order['order_id']}\s+buy\s+{re.escape(order['price'])}")   # own open order
    assert tradsys(home, "order", "cancel", order["order_id"]).returncode == 0
    eventually(lambda: not re.search(rf"\b{order['order_id']}\s+buy", screen.text()), timeout=15)

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


def next_doc(stream: "queue.Queue[str]", wanted: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
    """The next `watch --json` document that is `wanted` (one comes every second)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = stream.get(timeout=left)
        except queue.Empty:
            break
        assert line, "watch --json ended"
        doc = json.loads(line)
        if wanted(doc):
            return doc
    raise AssertionError(f"no such document within {timeout}s")


def kill_switch_alert(doc: dict[str, Any]) -> dict[str, Any] | None:
    return next((a for a in doc["alerts"] if a["rule"] == "kill_switch_on"), None)


@needs_tmux
def test_watch_shows_the_kill_switch_alert_firing_then_resolved(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home", "--seed", "6")
    environ = {k: v for k, v in {**os.environ, **env_for(daemon.home)}.items() if v != ""}
    as_json = subprocess.Popen([sys.executable, "-m", "tradsys", "watch", "SOL-USD", "--json"], env=environ,
                               stdout=subprocess.PIPE, text=True)
    docs = lines(as_json)
    screen = open_watch(daemon.home, "SOL-USD")
    try:
        next_doc(docs, lambda d: d["connected"])
        screen.shows(r"\blive\b")
        assert tradsys(daemon.home, "risk", "kill", "on").returncode == 0
        firing = kill_switch_alert(next_doc(docs, lambda d: (kill_switch_alert(d) or {}).get("state") == "firing"))
        assert firing is not None and (firing["severity"], firing["summary"]) == ("critical", "the kill switch is on")
        screen.shows(r"firing\s+critical\s+kill_switch_on\s.*\n.*the kill switch is on")

        assert tradsys(daemon.home, "risk", "kill", "off").returncode == 0
        resolved = kill_switch_alert(next_doc(docs, lambda d: (kill_switch_alert(d) or {}).get("state") == "resolved"))
        assert resolved is not None and resolved["id"] == firing["id"] and resolved["resolved_ns"] > 0
        screen.shows(r"resolved\s+critical\s+kill_switch_on")
    finally:
        screen.close()
        as_json.send_signal(signal.SIGINT)
        as_json.wait(timeout=20)
        daemon.kill(signal.SIGTERM)
    assert as_json.returncode == 0


@needs_tmux
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
