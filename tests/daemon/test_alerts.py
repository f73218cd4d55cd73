"""The alert state machine and rule configuration, without a daemon."""

import pytest

from tradsys.daemon.alerts import BUILTIN_RULES, AlertRules, RejectWindow, Rule, RuleError, load_rules, parse_duration

S = 1_000_000_000
BTC = (("symbol", "BTC-USD"),)


def rules(**overrides) -> AlertRules:  # type: ignore[no-untyped-def]
    base = Rule("stale", "staleness", ">", 30, 10, "warning", "no trades on {symbol} for {value:.0f}s")
    return AlertRules([Rule(**{**base.__dict__, **overrides})])


def states(changes: list[dict]) -> list[tuple[str, str]]:
    return [(c["id"], c["state"]) for c in changes]


def test_pending_then_firing_after_for_then_resolved() -> None:
    r = rules()
    assert states(r.evaluate(0, {"staleness": {BTC: 5}})) == []
    assert states(r.evaluate(1 * S, {"staleness": {BTC: 31}})) == [("stale:symbol=BTC-USD", "pending")]
    assert r.evaluate(5 * S, {"staleness": {BTC: 35}}) == [], "still pending: no duplicate"
    fired = r.evaluate(11 * S, {"staleness": {BTC: 41}})
    assert states(fired) == [("stale:symbol=BTC-USD", "firing")]
    assert fired[0]["summary"] == "no trades on BTC-USD for 41s"
    assert fired[0]["started_ns"] == 1 * S and fired[0]["labels"] == {"symbol": "BTC-USD"}
    assert r.evaluate(12 * S, {"staleness": {BTC: 42}}) == [], "firing is announced once"
    resolved = r.evaluate(13 * S, {"staleness": {BTC: 0}})
    assert states(resolved) == [("stale:symbol=BTC-USD", "resolved")]
    assert resolved[0]["resolved_ns"] == 13 * S
    assert r.active == {}


def test_zero_for_fires_at_once_and_labels_are_independent() -> None:
    r = rules(for_seconds=0)
    eth = (("symbol", "ETH-USD"),)
    changes = r.evaluate(0, {"staleness": {BTC: 99, eth: 1}})
    assert states(changes) == [("stale:symbol=BTC-USD", "firing")]
    assert states(r.evaluate(S, {"staleness": {BTC: 99, eth: 99}})) == [("stale:symbol=ETH-USD", "firing")]


def test_pending_that_clears_resolves_without_firing() -> None:
    r = rules()
    r.evaluate(0, {"staleness": {BTC: 50}})
    assert states(r.evaluate(2 * S, {"staleness": {BTC: 1}})) == [("stale:symbol=BTC-USD", "resolved")]
    assert states(r.evaluate(3 * S, {"staleness": {BTC: 50}})) == [("stale:symbol=BTC-USD", "pending")]


def test_a_signal_that_disappears_resolves_its_alert() -> None:
    r = rules(for_seconds=0)
    r.evaluate(0, {"staleness": {BTC: 50}})
    assert states(r.evaluate(S, {"staleness": {}})) == [("stale:symbol=BTC-USD", "resolved")]


@pytest.mark.parametrize(("op", "value", "fires"), [(">", 30, False), (">=", 30, True), ("<", 29, True), ("==", 30, True), ("!=", 30, False)])
def test_operators(op: str, value: float, fires: bool) -> None:
    r = rules(op=op, for_seconds=0)
    assert bool(r.evaluate(0, {"staleness": {BTC: value}})) is fires


def test_config_overrides_disables_and_adds_rules() -> None:
    loaded = load_rules({"rules": [
        {"name": "market_data_stale", "threshold": 5, "for": "2s"},
        {"name": "kill_switch_on", "enabled": False},
        {"name": "big_spread", "signal": "spread_bps", "op": ">", "threshold": 50, "severity": "info", "for": "1m"},
    ]})
    by_name = {r.name: r for r in loaded}
    assert by_name["market_data_stale"].threshold == 5 and by_name["market_data_stale"].for_seconds == 2
    assert "kill_switch_on" not in by_name
    assert by_name["big_spread"].for_seconds == 60
    assert len(loaded) == len(BUILTIN_RULES) + 1 - 1


@pytest.mark.parametrize("bad", [
    {"rules": [{"threshold": 1}]},
    {"rules": [{"name": "x", "signal": "s", "op": "~", "threshold": 1, "severity": "info"}]},
    {"rules": [{"name": "x", "signal": "s", "op": ">", "threshold": 1, "severity": "loud"}]},
    {"rules": [{"name": "x", "op": ">", "threshold": 1, "severity": "info"}]},
    {"rules": [{"name": "kill_switch_on", "colour": "red"}]},
    {"rules": [{"name": "kill_switch_on", "for": "soon"}]},
])
def test_bad_rules_are_refused(bad: dict) -> None:
    with pytest.raises(RuleError):
        load_rules(bad)


def test_durations() -> None:
    assert [parse_duration(v) for v in ("30s", "5m", "1h", 7, "0.5s")] == [30, 300, 3600, 7, 0.5]


class FakeVenue:
    def __init__(self, now: int) -> None:
        self.now = now


def test_reject_window_counts_user_orders_only() -> None:
    from tradsys.engine import OrderRejected

    window = RejectWindow(seconds=60, minimum=4)
    batch = [({"op": "new", "id": str(i), "account": "u"}, [OrderRejected(0, str(i), "u", "price_band", "")] if i < 3 else [])
             for i in range(5)]
    batch.append(({"op": "new", "id": "s", "account": "sim-lp-1"}, [OrderRejected(0, "s", "sim-lp-1", "x", "")]))
    window.on_commit(batch, FakeVenue(10 * S))
    assert window.ratio(10 * S) == pytest.approx(3 / 5)
    assert window.ratio(71 * S) == 0.0, "a minute later the window is empty"


def test_webhook_posts_transitions_and_retries() -> None:
    """The first POST fails (500), the retry lands; the caller never waits for either."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from tradsys.daemon.alerts import Webhook

    received: list[dict] = []
    attempts: list[int] = []
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            attempts.append(1)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if len(attempts) == 1:
                self.send_response(500)
                self.end_headers()
                return
            received.append(body)
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = Webhook(f"http://127.0.0.1:{server.server_port}/alerts", retries=3, timeout=2)
    try:
        hook.send({"id": "kill_switch_on", "rule": "kill_switch_on", "state": "firing"})
        assert done.wait(10), "the retry never arrived"
        assert received == [{"id": "kill_switch_on", "rule": "kill_switch_on", "state": "firing"}]
        assert len(attempts) == 2
    finally:
        hook.close()
        server.shutdown()
