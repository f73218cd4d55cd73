"""The rough edges a newcomer hit following the README (issue 23), each against a real daemon:
one-line usage errors, the same exit code for the same mistake everywhere, client ids, numbers as
people read them, output that fits 80 columns, JSON errors, replay of a file that is not commands,
and shell completion."""

import json
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.conftest import Run, best, tradsys
from tests.conftest import DaemonProcess, eventually, free_port
from tradsys.cli import complete
from tradsys.cli.client import target

ROOT = Path(__file__).resolve().parents[2]


def ok(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.mark.parametrize(("args", "says"), [
    (["order", "place", "BTC-USD", "buy", "-0.01", "--price", "1"], "-0.01 is negative"),
    (["order", "place", "BTC-USD", "buy", "1", "--price", "1", "--tif", "forever"], "'forever' is not one of"),
    (["order", "place", "BTC-USD", "hold", "1"], "'hold' is not one of 'buy', 'sell'"),
    (["order", "list", "--status", "gone"], "'gone' is not one of"),
    (["order", "place", "BTC-USD", "buy", "1", "--pirce", "5"], "No such option: --pirce"),
    (["book", "BTC-USD", "--depth", "0"], "0 is not in the range"),
    (["order", "place"], "Missing argument"),
])
def test_usage_errors_are_one_plain_line(daemon: DaemonProcess, args: list[str], says: str) -> None:
    done = tradsys(daemon.home, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("usage: ") and done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr and "Value error" not in done.stderr and "No such option: -0" not in done.stderr
    assert done.stdout == ""


def test_the_same_mistake_exits_the_same_everywhere(run: Run, daemon: DaemonProcess) -> None:
    usage = [
        ("book", "XYZ-USD"), ("watch", "XYZ-USD", "--json"), ("trades", "XYZ-USD"), ("bars", "XYZ-USD"),
        ("strategy", "start", "market_making", "--param", "spread_bps=wide"),
        ("strategy", "start", "market_making", "--param", "no_such_param=1"),
        ("strategy", "start", "market_making", "--param", "spread_bps"), ("strategy", "start", "no_such_strategy"),
        ("strategy", "stop", "999"), ("strategy", "status", "999"),
        ("backtest", "run", str(ROOT / "examples/data/btc_bars_1m.csv"), "-s", "sma_cross", "-p", "fast=ten"),
        ("order", "cancel", "no-such-order"), ("order", "show", "no-such-order"),
        ("order", "amend", "no-such-order", "--qty", "1"), ("alerts", "ack", "no-such-alert"),
        ("alerts", "list", "--state", "sleepy"), ("risk", "set", "no_such_limit", "1"),
        ("order", "place", "XYZ-USD", "buy", "1"),
    ]
    for args in usage:
        done = tradsys(daemon.home, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, (args, done.stderr)
    refused = run("order", "place", "BTC-USD", "buy", "0.01", "--price", "1.001", "--account", "edge")
    assert refused.exit_code == 1 and refused.stderr.startswith("rejected: price_precision"), "the venue's refusal: 1"


def test_a_refusal_under_json_is_a_json_document_too(run: Run) -> None:
    ok(run("risk", "set", "max_order_notional", "100", "--account", "jay", "--json"))
    _bid, ask = best(run)
    refused = run("order", "place", "BTC-USD", "buy", "0.01", "--price", str(ask), "--account", "jay", "--json")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("rejected: max_notional") and refused.stderr.count("\n") == 1
    doc = json.loads(refused.stdout)["error"]
    assert doc == {"exit_code": 1, "reason": "max_notional", "message": refused.stderr.strip()}
    unknown = run("book", "XYZ-USD", "--json")
    assert unknown.exit_code == 2 and json.loads(unknown.stdout)["error"]["exit_code"] == 2


def test_client_ids_wherever_an_order_id_goes(run: Run) -> None:
    bid, _ask = best(run)
    price = str(bid - 100)
    mine = ok(run("order", "place", "BTC-USD", "buy", "0.01", "--price", price, "--client-id", "my-bid-1",
                  "--account", "kim", "--json"))["order"]
    theirs = ok(run("order", "place", "BTC-USD", "buy", "0.02", "--price", price, "--client-id", "my-bid-1",
                    "--account", "lee", "--json"))["order"]
    assert mine["order_id"] != theirs["order_id"]
    listed = run("order", "list", "--account", "kim")
    header = listed.stdout.splitlines()[0].split()
    assert header[:3] == ["id", "client", "id"] and "my-bid-1" in listed.stdout

    shown = ok(run("order", "show", "my-bid-1", "--account", "kim", "--json"))["order"]
    assert shown["order_id"] == mine["order_id"], "a client id is looked up in the account named"
    assert ok(run("order", "show", "my-bid-1", "--account", "lee", "--json"))["order"]["order_id"] == theirs["order_id"]
    amended = ok(run("order", "amend", "my-bid-1", "--qty", "0.03", "--account", "kim", "--json"))["order"]
    assert amended["order_id"] == mine["order_id"] and Decimal(amended["open_qty"]) == Decimal("0.03")
    cancelled = ok(run("order", "cancel", "my-bid-1", "--account", "kim", "--json"))["order"]
    assert cancelled["order_id"] == mine["order_id"] and cancelled["status"] == "cancelled"
    assert ok(run("order", "show", theirs["order_id"], "--json"))["order"]["status"] == "new", "order ids still work"
    again = run("order", "cancel", "my-bid-1", "--account", "kim")
    assert again.exit_code == 1 and again.stderr.startswith("rejected:"), "found among closed orders: the venue refuses"
    assert run("order", "cancel", "my-bid-1", "--account", "nobody").exit_code == 2


def test_help_examples_of_the_order_commands_work_when_pasted(run: Run) -> None:
    """`place`, `show`, `amend` and `cancel` --help examples, pasted in turn, rest and then cancel one order."""
    best(run)

    def example(*path: str) -> list[str]:
        text = run(*path, "--help", COLUMNS="200").stdout
        line = next(line for line in text.splitlines() if "Example: tradsys" in line)
        return line.split("Example: tradsys", 1)[1].split("|")[0].split()

    placed = ok(run(*example("order", "place"), "--json"))["order"]
    assert placed["status"] == "new" and placed["client_id"] == "my-bid-1", "a passive price: it rests"
    assert ok(run(*example("order", "show"), "--json"))["order"]["order_id"] == placed["order_id"]
    amended = ok(run(*example("order", "amend"), "--json"))["order"]
    assert amended["status"] == "new" and Decimal(amended["price"]) < Decimal(placed["price"])
    assert ok(run(*example("order", "cancel"), "--json"))["order"]["status"] == "cancelled"


def test_relative_prices_rest_on_the_right_side_of_the_book(run: Run) -> None:
    bid, ask = best(run)
    buy = ok(run("order", "place", "BTC-USD", "buy", "0.01", "--price", "bid-0.5%", "-a", "rel", "--json"))["order"]
    sell = ok(run("order", "place", "BTC-USD", "sell", "0.01", "--price", "ask+25", "-a", "rel", "--json"))["order"]
    assert buy["status"] == sell["status"] == "new"
    assert Decimal(buy["price"]) < bid and Decimal(sell["price"]) > ask
    assert Decimal(buy["price"]) % Decimal("0.01") == 0 and Decimal(sell["price"]) % Decimal("0.01") == 0
    assert run("order", "place", "BTC-USD", "buy", "0.01", "--price", "bid*2").exit_code == 2
    ok(run("order", "cancel", "--all", "-a", "rel", "--json"))


def test_positions_table_rounds_and_json_keeps_every_digit(run: Run) -> None:
    best(run)

    def uneven() -> dict | None:
        ok(run("order", "place", "BTC-USD", "buy", "0.001", "--account", "round", "--json"))
        position = ok(run("positions", "--account", "round", "--json"))["positions"][0]
        return position if len(position["avg_price"].partition(".")[2]) > 2 else None

    position = eventually(uneven, timeout=30, interval=0.2)
    table = run("positions", "--account", "round").stdout
    numbers = re.findall(r"-?\d+\.\d+", table.splitlines()[1])
    assert numbers and all(len(n.partition(".")[2]) <= 3 for n in numbers), table
    assert str(Decimal(position["avg_price"]).quantize(Decimal("0.01"))) in table


def test_tables_and_errors_fit_80_columns(run: Run, daemon: DaemonProcess) -> None:
    started = ok(run("strategy", "start", "market_making", "--param", "spread_bps=5", "--param", "quantity=0.01",
                     "--json"))
    try:
        status = tradsys(daemon.home, "strategy", "status", COLUMNS="80")
        assert status.returncode == 0
        assert all(len(line) <= 80 for line in status.stdout.splitlines()), status.stdout
        assert "market_making" in status.stdout and "market_..." not in status.stdout
        orders = tradsys(daemon.home, "order", "list", "--account", "*", COLUMNS="80")
        assert orders.returncode == 0 and all(len(line) <= 80 for line in orders.stdout.splitlines()), orders.stdout
        error = tradsys(daemon.home, "strategy", "start", "market_making", "--param", "spread_bps=much-too-wide-"
                        "to-fit-on-one-line-of-eighty-columns-at-all", COLUMNS="80")
        assert error.returncode == 2 and error.stderr.count("\n") == 1, "one line; the terminal wraps it, not us"
    finally:
        ok(run("strategy", "stop", started["id"], "--json"))


def test_alerts_list_shows_the_id_that_ack_takes(run: Run) -> None:
    ok(run("risk", "kill", "on", "--json"))
    try:
        eventually(lambda: any(d["id"] == "kill_switch_on" for d in ok(run("alerts", "list", "--json"))), timeout=20)
        lines = run("alerts", "list").stdout.splitlines()
        header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["id"])
        assert any(line.split()[0] == "kill_switch_on" for line in lines[header + 1:])
        assert run("alerts", "ack", "kill_switch_on").exit_code == 0
    finally:
        ok(run("risk", "kill", "off", "--json"))


def test_replay_of_a_file_that_is_not_commands_stops_soon(tmp_path: Path) -> None:
    junk = tmp_path / "numbers.txt"
    junk.write_text("".join(f"{n}\n" for n in range(5001)))
    done = subprocess.run([sys.executable, "-m", "tradsys", "replay", str(junk), "--json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) <= 6 and "is it JSON lines" in done.stderr.splitlines()[-1]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["event"] == "summary" and summary["stopped"] is True and summary["lines"] == 5
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes((ROOT / "examples/orders.jsonl").read_bytes() + b"oops\n" * 20)
    done = subprocess.run([sys.executable, "-m", "tradsys", "replay", str(mixed), "--json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 6
    assert done.stderr.splitlines()[-1] == "20 bad line(s) skipped (the first 5 shown)"
    assert json.loads(done.stdout.splitlines()[-1])["bad"] == 20


def test_daemon_and_backtest_commands_print_json(daemon: DaemonProcess) -> None:
    status = tradsys(daemon.home, "daemon", "status", "--json")
    assert json.loads(status.stdout)["running"] is True
    strategies = json.loads(tradsys(daemon.home, "backtest", "strategies", "--json").stdout)["strategies"]
    sma = next(s for s in strategies if s["name"] == "sma_cross")
    assert {p["name"] for p in sma["params"]} >= {"fast", "slow"}
    running = tradsys(daemon.home, "daemon", "start", "--json")
    assert running.returncode == 1 and "already running" in json.loads(running.stdout)["error"]["message"]
    assert "tradsys daemon stop" in running.stderr and running.stderr.count("\n") == 1
    stopped = tradsys(daemon.home / "elsewhere", "daemon", "stop", "--json")
    assert json.loads(stopped.stdout) == {"stopped": False, "running": False}


def test_daemon_start_detached_and_stop_print_json(tmp_path: Path) -> None:
    home = tmp_path / "detached"
    started = tradsys(home, "daemon", "start", "--detach", "--json", "--no-simulate", "--grpc-port", str(free_port()),
                      "--http-port", str(free_port()), timeout=60)
    assert started.returncode == 0, started.stderr
    doc = json.loads(started.stdout)
    assert doc["started"] is True and doc["pid"] > 0 and doc["grpc"].startswith("127.0.0.1:")
    stopped = tradsys(home, "daemon", "stop", "--json", timeout=60)
    assert stopped.returncode == 0 and json.loads(stopped.stdout) == {"stopped": True, "running": False,
                                                                       "pid": doc["pid"]}


def test_completion_of_symbols_strategies_and_commands(daemon: DaemonProcess, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for field in ("host", "port", "token", "home", "ca", "account"):
        monkeypatch.setattr(target, field, None)
    monkeypatch.setenv("TRADSYS_HOME", str(daemon.home))
    assert complete.symbols("") == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert complete.symbols("et") == ["ETH-USD"]
    assert complete.strategies("m") == ["market_making", "mean_reversion"]
    assert "sma_cross" in complete.builtin_strategies("s")

    monkeypatch.setenv("TRADSYS_HOME", str(tmp_path))
    monkeypatch.setattr(target, "port", free_port())
    started = time.monotonic()
    assert complete.symbols("B") == [] and complete.strategies("") == []
    assert time.monotonic() - started < 3, "no daemon: nothing, quickly"

    script = str(Path(sys.executable).with_name("tradsys"))
    env = {"TRADSYS_HOME": str(daemon.home), "PATH": "/usr/bin:/bin", "_TRADSYS_COMPLETE": "complete_bash"}
    words = subprocess.run([script], env={**env, "COMP_WORDS": "tradsys or", "COMP_CWORD": "1"},
                           capture_output=True, text=True, timeout=30)
    assert words.stdout.split() == ["order"]
    symbol = subprocess.run([script], env={**env, "COMP_WORDS": "tradsys book S", "COMP_CWORD": "2"},
                            capture_output=True, text=True, timeout=30)
    assert symbol.stdout.split() == ["SOL-USD"]

