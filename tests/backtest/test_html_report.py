"""The HTML report: what it shows, readable numbers, and that headless Chromium loads it without a
console error and lays its charts out."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from websockets.sync.client import connect

from tests.backtest.test_data_shapes import canonical
from tests.e2e.test_peerjs_browser import CHROMIUM, FLAGS, _devtools_page, _end_session
from tradsys.backtest.html_report import number
from tradsys.cli.app import app

runner = CliRunner()
CHECK = """JSON.stringify({
  charts: [...document.querySelectorAll("svg.chart")].map(s => ({name: s.dataset.name,
    width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height,
    lines: s.querySelectorAll("polyline, polygon:not(.buy):not(.sell)").length})),
  buys: document.querySelectorAll("polygon.buy").length, sells: document.querySelectorAll("polygon.sell").length,
  trades: document.querySelectorAll("table.trades tr").length - 1, text: document.body.innerText})"""


def report(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """`--report` written by the CLI; the file is page.html, the name the DevTools helper looks for."""
    data = tmp_path / "BTC_USDT-1m.parquet"
    canonical("BTC-USDT").drop("symbol").write_parquet(data)
    path = tmp_path / "page.html"
    result = runner.invoke(app, ["backtest", "run", str(data), "-s", "sma_cross", "-p", "fast=3", "-p", "slow=8",
                                 "--capital", "150000", "--report", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert f"wrote {path}" in result.stderr
    return path, json.loads(result.stdout)


def test_numbers_are_readable() -> None:
    assert [number(v) for v in (108_800.0, 101.25, 0.0051234, 0.0, -2_500.5)] == [
        "108,800", "101.25", "0.005123", "0.00", "-2,500"]


def test_the_report_shows_the_run(tmp_path: Path) -> None:
    path, doc = report(tmp_path)
    page = path.read_text()
    for text in ("BTC-USDT: price, buys", "Equity", "Drawdown", "fast=3, slow=8", "2024-01-01 00:00",
                 "Sharpe (ann. from 0.4 d)", "entry (UTC)", "duration", "150,000.00", "warning: the data span"):
        assert text in page, text
    assert not re.search(r"\d[eE][+-]\d", page), "a number in exponent form"
    assert page.count('class="buy"') + page.count('class="sell"') == doc["metrics"]["fills"]
    assert "<script" not in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def _is_error(msg: dict[str, Any]) -> bool:
    method, params = msg.get("method"), msg.get("params", {})
    return (method == "Runtime.exceptionThrown"
            or (method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"))
            or (method == "Log.entryAdded" and params["entry"]["level"] == "error"))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (run scripts/test-deps.sh)")
def test_chromium_loads_it_without_errors_and_draws_the_charts(tmp_path: Path) -> None:
    """Chromium starts on a blank page so the console is watched before the report loads; the test then
    polls the page's state rather than waiting for a load event a busy machine may deliver late."""
    path, doc = report(tmp_path)
    errors: list[Any] = []
    ready = f"document.readyState === 'complete' && location.href === {json.dumps(path.as_uri())} ? {CHECK} : null"
    with tempfile.TemporaryDirectory(prefix="tradsys-chromium-") as profile:
        proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            with connect(_devtools_page(Path(profile), proc, deadline, "about:blank"), max_size=None) as ws:
                seq = 0

                def call(method: str, params: dict | None = None) -> dict[str, Any]:
                    """Send one command and return its reply, keeping every error event seen meanwhile."""
                    nonlocal seq
                    seq += 1
                    ws.send(json.dumps({"id": seq, "method": method, "params": params or {}}))
                    while True:
                        assert time.monotonic() < deadline, f"no reply to {method}"
                        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                        if _is_error(msg):
                            errors.append(msg["params"])
                        if msg.get("id") == seq:
                            return msg

                for domain in ("Runtime", "Log", "Page"):
                    call(f"{domain}.enable")
                call("Page.navigate", {"url": path.as_uri()})
                while True:
                    assert time.monotonic() < deadline, "the page never loaded"
                    value = call("Runtime.evaluate", {"expression": ready, "returnByValue": True})
                    value = value.get("result", {}).get("result", {}).get("value")
                    if value:
                        shown = json.loads(value)
                        break
                    time.sleep(0.05)
        finally:
            _end_session(proc)
    assert errors == []
    names = [c["name"] for c in shown["charts"]]
    assert names == ["price BTC-USDT", "equity", "drawdown"]
    assert all(c["width"] > 500 and c["height"] > 100 and c["lines"] == 1 for c in shown["charts"]), shown["charts"]
    assert shown["buys"] + shown["sells"] == doc["metrics"]["fills"] and shown["buys"] > 0 < shown["sells"]
    assert shown["trades"] == doc["metrics"]["trades"] > 0
    assert "2024-01-01" in shown["text"]
