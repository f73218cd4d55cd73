"""Headless Chromium opens /swagger/index.html, authorises with a token through the UI's own
dialog, and executes GET /api/v1/books/BTC-USD from the page, as a user would.

Chromium is driven through its DevTools protocol, as tests/e2e does; skipped without Debian's
`chromium` (scripts/test-deps.sh installs it).
"""

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.conftest import DaemonProcess
from tests.e2e.test_peerjs_browser import CHROMIUM, FLAGS, _devtools_page, _end_session, _evaluate
from tests.rest.conftest import Rest

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (run scripts/test-deps.sh)")

DRIVE = """
(async () => {
  const until = async (find, what) => {
    for (let i = 0; i < 300; i++) { const found = find(); if (found) return found; await new Promise(r => setTimeout(r, 100)); }
    throw new Error("never found: " + what);
  };
  const type = (input, text) => {
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(input, text);
    input.dispatchEvent(new Event("input", {bubbles: true}));
  };
  try {
    (await until(() => document.querySelector(".btn.authorize"), "the Authorize button")).click();
    type(await until(() => document.querySelector(".auth-container input"), "the token field"), TOKEN);
    (await until(() => document.querySelector(".auth-btn-wrapper .btn.authorize"), "the dialog's Authorize")).click();
    (await until(() => document.querySelector(".auth-btn-wrapper .btn-done"), "the dialog's Close")).click();
    const op = await until(() => document.querySelector("#operations-MarketDataService-MarketDataService_GetBook"), "GetBook");
    op.querySelector(".opblock-summary-control").click();
    (await until(() => op.querySelector(".try-out__btn"), "Try it out")).click();
    type(await until(() => op.querySelector("tr[data-param-name='symbol'] input"), "the symbol field"), "BTC-USD");
    (await until(() => op.querySelector(".btn.execute"), "Execute")).click();
    const status = await until(() => op.querySelector(".live-responses-table tbody .response-col_status"), "the response");
    const body = await until(() => op.querySelector(".live-responses-table tbody .response-col_description pre"), "its body");
    const curl = op.querySelector(".curl-command") ? op.querySelector(".curl-command").innerText : "";
    window.result = {status: status.innerText.trim(), body: body.innerText, curl: curl};
  } catch (e) { window.result = {error: String(e)}; }
})();
"""


def _drive(url: str, token: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tradsys-chromium-") as profile:
        proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", url], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            seq = [0]
            with connect(_devtools_page(Path(profile), proc, deadline, "/swagger/"), max_size=None) as ws:
                while not _evaluate(ws, "location.pathname == '/swagger/index.html' && !!window.ui", seq):
                    assert time.monotonic() < deadline, "the page never loaded"
                    time.sleep(0.1)
                _evaluate(ws, DRIVE.replace("TOKEN", json.dumps(token)), seq)
                while (value := _evaluate(ws, "window.result ? JSON.stringify(window.result) : null", seq)) is None:
                    assert time.monotonic() < deadline, "the page never executed the call"
                    time.sleep(0.2)
        finally:
            _end_session(proc)
    return json.loads(value)


def test_swagger_ui_authorises_and_gets_a_book(quiet: DaemonProcess) -> None:
    rest = Rest(quiet)
    assert rest.call("POST", "/api/v1/orders", {"account": "alice", "symbol": "BTC-USD", "side": "SIDE_BUY",
                                                "type": "ORDER_TYPE_LIMIT", "tif": "TIME_IN_FORCE_GTC",
                                                "price": "101", "qty": "0.1"})[0] == 200
    token = rest.token("viewer")
    outcome = _drive(f"http://{quiet.http}/swagger/index.html", token)
    assert outcome.get("status") == "200", outcome
    book = json.loads(outcome["body"])["book"]
    assert book["symbol"] == "BTC-USD" and {"price": "101", "qty": "0.1", "order_count": 1} in book["bids"]
    assert f"Authorization: Bearer {token}" in outcome["curl"] and "/api/v1/books/BTC-USD" in outcome["curl"]
