"""Every `tradsys` command against a real daemon: output, --json, and each exit code."""

import json
import signal
import subprocess
import os
import sys
import time
from decimal import Decimal

import pytest

from tests.cli.conftest import Run, best, env_for, lines, tradsys
from tests.conftest import DaemonProcess, eventually, free_port, start_daemon
from tradsys.cli.app import app
from tradsys.daemon.auth import issue_token, load_secret


def ok(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_market_list_book_trades_bars(run: Run) -> None:
    instruments = ok(run("market", "list", "--json"))["instruments"]
    assert {i["symbol"] for i in instruments} == {"BTC-USD", "ETH-USD", "SOL-USD"}
    assert instruments[0]["tick_size"] == "0.01" and instruments[0]["status"] == "trading"
    assert "BTC-USD" in run("market", "list").stdout

    best(run)
    book = ok(run("book", "btc-usd", "--depth", "3", "--json"))
    assert 0 < len(book["bids"]) <= 3 and 0 < len(book["asks"]) <= 3
    assert Decimal(book["bids"][0]["price"]) < Decimal(book["asks"][0]["price"])
    assert "spread" in run("book", "BTC-USD").stdout

    trades = eventually(lambda: ok(run("trades", "BTC-USD", "--limit", "5", "--json"))["trades"], timeout=20)
    assert len(trades) <= 5 and all(Decimal(t["price"]) > 0 for t in trades)
    assert isinstance(trades[0]["price"], str), "decimals stay strings"
    bars = eventually(lambda: ok(run("bars", "BTC-USD", "--interval", "1s", "--json"))["bars"])
    assert {"open", "high", "low", "close", "volume"} <= bars[-1].keys()
    assert run("bars", "BTC-USD", "--interval", "7m").exit_code == 2


def test_order_lifecycle_place_list_show_amend_cancel(run: Run) -> None:
    bid, _ask = best(run)
    price = str(bid - Decimal("50.00"))
    placed = ok(run("order", "place", "BTC-USD", "buy", "0.01", "--price", price, "--account", "alice",
                    "--client-id", "c-1", "--json"))
    order = placed["order"]
    assert order["status"] == "new" and Decimal(order["price"]) == Decimal(price) and order["client_id"] == "c-1"
    oid = order["order_id"]

    listed = ok(run("order", "list", "--status", "open", "--symbol", "BTC-USD", "--since", "1h", "--account", "alice",
                    "--json"))["orders"]
    assert [o["order_id"] for o in listed] == [oid]
    human = run("order", "list", "--account", "alice")
    assert oid in human.stdout and "new" in human.stdout

    shown = ok(run("order", "show", oid, "--json"))
    assert shown["order"]["order_id"] == oid and shown["fills"] == []

    amended = ok(run("order", "amend", oid, "--price", str(bid - Decimal("60.00")), "--qty", "0.02", "--json"))["order"]
    assert Decimal(amended["price"]) == bid - 60 and Decimal(amended["open_qty"]) == Decimal("0.02")

    cancelled = ok(run("order", "cancel", oid, "--json"))["order"]
    assert cancelled["status"] == "cancelled"
    again = run("order", "cancel", oid)
    assert again.exit_code == 1 and again.stderr.count("\n") == 1 and "rejected:" in again.stderr

    ids = [ok(run("order", "place", "BTC-USD", "buy", "0.01", "-p", price, "-a", "alice", "--json"))["order"]["order_id"]
           for _ in range(2)]
    assert sorted(ok(run("order", "cancel", "--all", "--symbol", "BTC-USD", "-a", "alice", "--json"))["cancelled"]) == sorted(ids)
    assert run("order", "cancel").exit_code == 2


def test_market_order_fills_and_positions(run: Run) -> None:
    best(run)
    placed = ok(run("order", "place", "BTC-USD", "buy", "0.01", "--account", "bob", "--json"))
    assert placed["order"]["type"] == "market" and placed["order"]["status"] == "filled"
    assert placed["fills"] and placed["fills"][0]["liquidity"] == "taker"
    oid = placed["order"]["order_id"]
    shown = ok(run("order", "show", oid, "--json"))
    assert [f["order_id"] for f in shown["fills"]] == [oid] * len(shown["fills"])

    fills = ok(run("fills", "--account", "bob", "--json"))["fills"]
    assert {f["order_id"] for f in fills} == {oid}
    positions = ok(run("positions", "--account", "bob", "--json"))["positions"]
    assert [(p["symbol"], p["qty"]) for p in positions] == [("BTC-USD", "0.01")]
    assert {"realized_pnl", "unrealized_pnl", "avg_price"} <= positions[0].keys()
    human = run("positions", "--account", "bob").stdout
    assert "BTC-USD" in human and "unrealized" in human


def test_default_account_needs_no_flags(run: Run) -> None:
    """A newcomer with the admin token trades as 'default' and sees that account's orders."""
    best(run)
    placed = ok(run("order", "place", "ETH-USD", "sell", "0.01", "--json"))
    assert placed["order"]["account"] == "default"
    assert placed["order"]["order_id"] in {o["order_id"] for o in ok(run("order", "list", "--json"))["orders"]}
    assert ok(run("order", "place", "ETH-USD", "sell", "0.01", "--json", TRADSYS_ACCOUNT="carol"))["order"]["account"] == "carol"


def test_rejected_order_is_one_line_and_exit_1(run: Run) -> None:
    limit = ok(run("risk", "set", "max_order_notional", "100", "--account", "dave", "--json"))["limits"]
    assert limit == [{"key": "max_order_notional", "value": "100", "account": "dave", "symbol": ""}]
    _bid, ask = best(run)
    result = run("order", "place", "BTC-USD", "buy", "0.01", "--price", str(ask), "--account", "dave")
    assert result.exit_code == 1
    assert result.stderr.startswith("rejected: max_notional (order notional ") and "> limit 100 USD)" in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    tick = run("order", "place", "BTC-USD", "buy", "0.01", "--price", "1.001", "--account", "dave")
    assert tick.exit_code == 1 and tick.stderr.startswith("rejected: price_precision")


@pytest.mark.parametrize("args", [
    ["order", "place", "BTC-USD", "hold", "1"],
    ["order", "place", "BTC-USD", "buy", "abc", "--price", "1"],
    ["order", "place", "BTC-USD", "buy", "1", "--price", "-5"],
    ["order", "place", "BTC-USD", "buy", "1", "--type", "stop-limit", "--price", "1"],
    ["order", "amend", "1"],
    ["order", "list", "--since", "yesterday"],
    ["order", "nope"],
    ["book", "BTC-USD", "--depth", "0"],
])
def test_usage_errors_exit_2(run: Run, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout


def test_auth_errors_exit_4(run: Run, daemon: DaemonProcess) -> None:
    bad = run("--token", "not-a-token", "positions")
    assert bad.exit_code == 4 and bad.stderr.startswith("auth: token refused")
    env_bad = run("positions", TRADSYS_TOKEN="x.y.z")
    assert env_bad.exit_code == 4
    viewer = tradsys(daemon.home, "auth", "token", "--role", "viewer").stdout.strip()
    denied = run("--token", viewer, "order", "place", "BTC-USD", "buy", "0.01", "--account", "a1")
    assert denied.exit_code == 4 and "may not trade" in denied.stderr
    assert run("--token", viewer, "market", "list").exit_code == 0, "a viewer reads"
    assert run("--token", viewer, "risk", "kill", "on").exit_code == 4


def test_a_trader_reads_and_trades_its_own_account_only(run: Run, daemon: DaemonProcess) -> None:
    trader = issue_token(load_secret(daemon.home), "trader", ["tara"])
    bid, _ask = best(run)
    placed = ok(run("--token", trader, "order", "place", "BTC-USD", "buy", "0.01", "--price", str(bid - 50), "--json"))
    assert placed["order"]["account"] == "tara", "the token's only account"
    assert [o["order_id"] for o in ok(run("--token", trader, "order", "list", "--json"))["orders"]] == [
        placed["order"]["order_id"]]
    assert ok(run("--token", trader, "positions", "--json")) == {"positions": []}
    for args in (["order", "list"], ["positions"], ["fills"]):
        denied = run("--token", trader, *args, "--account", "bob")
        assert denied.exit_code == 4, (args, denied.stdout)
        assert denied.stderr.strip() == "auth: role trader may read accounts [tara], not bob", args


def test_no_daemon_exit_3_real_process(tmp_path, daemon: DaemonProcess) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    result = tradsys(tmp_path, "--grpc-port", str(port), "order", "list")
    assert result.returncode == 3
    assert result.stderr == f"daemon not running on 127.0.0.1:{port} — start it with `tradsys daemon start`\n"
    # with no pid file and no flags, the default port is the one named
    empty = tradsys(tmp_path / "empty", "market", "list", "--json")
    assert empty.returncode in (3, 4) and "Traceback" not in empty.stderr
    # and the real process reaches the daemon by its pid file with nothing typed
    listed = tradsys(daemon.home, "market", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["instruments"]


def test_global_home_option(run: Run, daemon: DaemonProcess) -> None:
    result = run("--home", str(daemon.home), "market", "list", "--json", TRADSYS_HOME="/nonexistent")
    assert result.exit_code == 0, result.stderr


def test_risk_show_halt_resume_kill(run: Run) -> None:
    shown = ok(run("risk", "show", "--json"))
    assert shown["kill_switch"]["on"] is False and {s["symbol"] for s in shown["symbols"]} >= {"BTC-USD"}
    assert any(limit["key"] == "max_order_notional" for limit in shown["limits"])
    assert "kill switch: off" in run("risk", "show").stdout

    halted = ok(run("risk", "halt", "SOL-USD", "--reason", "test halt", "--json"))
    assert halted["halted"] is True and halted["halt_reason"] == "test halt"
    refused = run("order", "place", "SOL-USD", "buy", "1", "--price", "100", "--account", "erin")
    assert refused.exit_code == 1 and refused.stderr.startswith("rejected: halted")
    assert ok(run("risk", "resume", "SOL-USD", "--json"))["halted"] is False

    assert ok(run("risk", "kill", "on", "--reason", "drill", "--json"))["on"] is True
    try:
        killed = run("order", "place", "BTC-USD", "buy", "0.01", "--account", "erin")
        assert killed.exit_code == 1 and killed.stderr.startswith("rejected: kill_switch")
        assert "ON (drill" in run("risk", "show").stdout
    finally:
        assert ok(run("risk", "kill", "off", "--json"))["on"] is False
    assert run("risk", "kill", "maybe").exit_code == 2
    assert run("risk", "set", "no_such_limit", "1").exit_code == 2, "an unknown name the user typed: a usage error"


def test_tail_streams_json_lines_until_ctrl_c(run: Run, daemon: DaemonProcess) -> None:
    environ = {k: v for k, v in {**os.environ, **env_for(daemon.home)}.items() if v != ""}
    proc = subprocess.Popen([sys.executable, "-m", "tradsys", "tail", "all", "--symbol", "BTC-USD", "--account", "tailer",
                             "--json"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        while first["type"] == "alert":  # `all` includes alerts; the market's first minutes may raise some
            first = json.loads(proc.stdout.readline())
        assert first["type"] == "trade" and first["symbol"] == "BTC-USD"
        ok(run("order", "place", "BTC-USD", "buy", "0.01", "--account", "tailer", "--json"))
        kinds = set()
        while "filled" not in kinds:
            line = json.loads(proc.stdout.readline())
            if line["type"] == "order":
                assert line["order"]["account"] == "tailer"
                kinds.add(line["kind"])
        assert kinds >= {"accepted", "filled"}
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err


def test_tail_follows_the_daemon_through_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    first = start_daemon(home)
    environ = {k: v for k, v in {**os.environ, **env_for(home)}.items() if v != ""}
    command = [sys.executable, "-m", "tradsys", "tail", "trades", "--symbol", "BTC-USD", "--json"]
    follow = subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    once = subprocess.Popen([*command, "--no-reconnect"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    followed, second = lines(follow), None
    try:
        assert json.loads(followed.get(timeout=30))["type"] == "trade"
        assert once.stdout is not None and json.loads(once.stdout.readline())["type"] == "trade"
        first.kill(signal.SIGTERM)
        _out, err = once.communicate(timeout=30)
        assert once.returncode == 3 and "Traceback" not in err, err
        restart_ns = time.time_ns()
        second = start_daemon(home, grpc_port=first.grpc_port, http_port=first.http_port)
        while json.loads(followed.get(timeout=30))["ts_ns"] < restart_ns:
            pass  # lines from before the restart
    finally:
        follow.send_signal(signal.SIGINT)
        _out, err = follow.communicate(timeout=20)
        if second is not None:
            second.kill(signal.SIGTERM)
    assert follow.returncode == 0
    assert "reconnecting" in err and "reconnected" in err
    assert "Cancelling" not in err and "(" not in err.split("reconnecting")[0], "our words, not gRPC's"


def command_paths() -> list[list[str]]:
    """Every command of the tree, found by walking its groups (not a list kept by hand)."""
    import typer

    root = typer.main.get_command(app)
    found: list[list[str]] = []

    def walk(group, path: list[str]) -> None:  # type: ignore[no-untyped-def]
        ctx = group.make_context("tradsys", [], resilient_parsing=True)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if hasattr(command, "list_commands"):
                walk(command, [*path, name])
            else:
                found.append([*path, name])

    walk(root, [])
    return found


def test_every_command_has_help_with_an_example_and_json() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    paths = command_paths()
    assert len(paths) >= 30 and ["order", "place"] in paths and ["daemon", "start"] in paths and ["replay"] in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, path
        assert "Example" in result.stdout, path
        assert "--json" in result.stdout, path


def test_watch_json_prints_state_lines(daemon: DaemonProcess) -> None:
    environ = {k: v for k, v in {**os.environ, **env_for(daemon.home)}.items() if v != ""}
    proc = subprocess.Popen([sys.executable, "-m", "tradsys", "watch", "BTC-USD", "--json"], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        state = eventually(lambda: (doc := json.loads(proc.stdout.readline())) and doc["bids"] and doc)
        assert state["symbol"] == "BTC-USD" and state["connected"] in (True, False) and "position" in state
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err
