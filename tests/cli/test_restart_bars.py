"""`tradsys bars` and `tradsys trades` across a daemon restart: the recent bars and tape are rebuilt
from the stored fills, so charts and bar strategies do not start from nothing."""

import json
import signal
from pathlib import Path

from tests.cli.conftest import tradsys
from tests.conftest import eventually, start_daemon


def bars(home: Path, interval: str) -> list[dict]:
    done = tradsys(home, "bars", "BTC-USD", "--interval", interval, "--limit", "2000", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["bars"]


def test_bars_and_trades_survive_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_daemon(home, "--seed", "4")
    try:
        first.wait_quoted()
        before = eventually(lambda: (found := [b for b in bars(home, "1s") if b["closed"]]) and len(found) >= 3 and found,
                            timeout=30)
        trades = json.loads(tradsys(home, "trades", "BTC-USD", "--limit", "5", "--json").stdout)["trades"]
    finally:
        first.kill(signal.SIGTERM)
    second = start_daemon(home, "--seed", "4", "--no-simulate")
    try:
        after = {b["start_ns"]: b for b in bars(home, "1s")}
        for bar in before:
            assert after[bar["start_ns"]] | {"closed": True} == bar, "the same bar, rebuilt from the fills"
        assert bars(home, "1m"), "every interval is rebuilt"
        again = json.loads(tradsys(home, "trades", "BTC-USD", "--limit", "1000", "--json").stdout)["trades"]
        assert trades and trades == [t for t in again if t["trade_id"] in {x["trade_id"] for x in trades}]
    finally:
        second.kill(signal.SIGTERM)
