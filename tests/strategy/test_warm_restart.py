"""A restarted daemon's `on_bars` strategies start with the bars that closed before the restart."""

import signal
from pathlib import Path

from tests.conftest import eventually, quoted_daemon
from tradsys.proto import strategy_pb2 as spb
from tradsys.proto import strategy_pb2_grpc as spb_grpc

REMEMBER = '''
from tradsys.engine.strategy import Strategy

LOG = {log!r}


class Remember(Strategy):
    """Writes "start" at each start and, at each bar, how many bars its history holds."""

    bar_interval = "1s"

    def on_start(self):
        with open(LOG, "a") as out:
            out.write("start\\n")

    def on_bars(self, bars):
        with open(LOG, "a") as out:
            out.write(f"{{bars.n}} {{len(bars.close)}}\\n")
'''


def runs(log: Path) -> list[list[tuple[int, int]]]:
    """The histories' sizes seen at each bar, per start."""
    out: list[list[tuple[int, int]]] = []
    for line in log.read_text().splitlines() if log.exists() else ():
        if line == "start":
            out.append([])
        else:
            n, length = line.split()
            out[-1].append((int(n), int(length)))
    return out


def test_a_restored_on_bars_strategy_starts_with_the_bars_before_the_restart(tmp_path: Path) -> None:
    home, log, code = tmp_path / "home", tmp_path / "bars.log", tmp_path / "remember.py"
    home.mkdir()
    code.write_text(REMEMBER.format(log=str(log)))
    daemon = next(quoted_daemon(home, "[market]\ntaker_rate = 40\n", "--seed", "4"))
    try:
        stub = spb_grpc.StrategyServiceStub(daemon.channel())
        stub.StartStrategy(spb.StartStrategyRequest(kind=f"{code}:Remember", account="warm", symbols=["BTC-USD"]),
                           metadata=daemon.metadata(), timeout=10)
        eventually(lambda: len(runs(log)) == 1 and len(runs(log)[0]) >= 3, timeout=30)
        daemon.kill(signal.SIGTERM)
        daemon.proc.wait(timeout=30)
        before = len(runs(log)[0])
        daemon = next(quoted_daemon(home, "[market]\ntaker_rate = 40\n", "--seed", "4"))
        eventually(lambda: len(runs(log)) == 2 and runs(log)[1], timeout=30)
        first_n, first_len = runs(log)[1][0]
        assert first_n == first_len  # the columns hold the bars so far, no more
        assert first_n > before // 2, runs(log)  # the bars closed before the restart, then the new one
    finally:
        if daemon.proc.poll() is None:
            daemon.kill(signal.SIGTERM)
