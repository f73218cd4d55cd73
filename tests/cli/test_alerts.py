"""`tradsys alerts` and `tradsys tail alerts` against a real daemon: the kill switch alert end to end."""

import json
import os
import queue
import signal
import subprocess
import sys

from tests.cli.conftest import Run, env_for, lines
from tests.conftest import DaemonProcess, eventually


def firing(run: Run) -> set[str]:
    result = run("alerts", "list", "--json")
    assert result.exit_code == 0, result.stderr
    docs = json.loads(result.stdout)
    return {d["id"] for d in docs if d["state"] == "firing"}


def next_about(stream: "queue.Queue[str]", rule: str) -> dict:
    """The next streamed transition of `rule` (the kill switch also starves the market: other alerts come too)."""
    while True:
        line = stream.get(timeout=30)
        assert line, "alerts tail ended"
        doc = json.loads(line)
        if doc["rule"] == rule:
            return doc


def test_kill_switch_alert_in_list_tail_and_ack(run: Run, daemon: DaemonProcess) -> None:
    environ = {k: v for k, v in {**os.environ, **env_for(daemon.home)}.items() if v != ""}
    tail = subprocess.Popen([sys.executable, "-m", "tradsys", "alerts", "tail", "--json"], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stream = lines(tail)
    try:
        assert run("risk", "kill", "on").exit_code == 0
        eventually(lambda: "kill_switch_on" in firing(run))
        assert tail.stdout is not None
        line = next_about(stream, "kill_switch_on")
        assert (line["state"], line["severity"]) == ("firing", "critical")
        acked = run("alerts", "ack", "kill_switch_on", "--json")
        assert acked.exit_code == 0 and json.loads(acked.stdout)["acked"] is True
        table = run("alerts", "list")
        assert "kill_switch_on" in table.stdout and "firing" in table.stdout
        assert run("risk", "kill", "off").exit_code == 0
        eventually(lambda: "kill_switch_on" not in firing(run))
        assert next_about(stream, "kill_switch_on")["state"] == "resolved"
    finally:
        tail.send_signal(signal.SIGINT)
        tail.communicate(timeout=20)
    assert tail.returncode == 0
    missing = run("alerts", "ack", "no-such-alert")
    assert missing.exit_code == 2 and "no alert" in missing.stderr, "an unknown id the user typed: a usage error"
