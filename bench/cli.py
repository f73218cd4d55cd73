"""CLI start-up: each everyday command's median wall time and peak RSS beside the import floor.

Starts a daemon with the simulated market in a temporary home (loopback only), then runs each
command --runs times as a whole process, the way a person or a script does, with the same
interpreter. The floor is `python -c "import grpc, typer, rich.console"`: what any Typer/rich
gRPC client pays before it does anything. Each run of a command is paired with a run of the floor
just before it, so both see the machine at the same moment; the ratio printed is the median of
the pairs' ratios. The target is each command within 1.5x the floor and under 60 MB RSS.

    python bench/cli.py [--runs 10]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import start_daemon  # noqa: E402


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process; fails loudly if the command fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(argv)} exited {code}: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024


def measure(argv: list[str], floor: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float, float]:
    """Median wall time of the command and of the floor, the median of their paired ratios, and the
    command's peak RSS."""
    pairs = [(run(floor, env)[0], *run(argv, env)) for _ in range(runs)]
    return (statistics.median(w for _, w, _ in pairs), statistics.median(f for f, _, _ in pairs),
            statistics.median(w / f for f, w, _ in pairs), max(r for _, _, r in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    tradsys = str(Path(sys.executable).with_name("tradsys"))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        daemon = start_daemon(home, "--seed", "3")
        try:
            daemon.wait_quoted()
            env = {**os.environ, "TRADSYS_HOME": str(home)}
            book = json.loads(subprocess.run([tradsys, "book", "BTC-USD", "--json"], env=env, check=True,
                                             capture_output=True).stdout)
            passive = f"{float(book['bids'][0]['price']) * 0.98:.2f}"  # rests: inside the price band, below the bid
            commands = {
                "order place": ["order", "place", "BTC-USD", "buy", "0.001", "--price", passive, "--json"],
                "order list": ["order", "list", "--json"],
                "book": ["book", "BTC-USD", "--json"],
                "positions": ["positions", "--json"],
                "order list (table)": ["order", "list"],
                "book (table)": ["book", "BTC-USD"],
                "--help": ["--help"],
            }
            floor = [sys.executable, "-c", "import grpc, typer, rich.console"]
            print(f"floor: {' '.join(floor[1:])!r}, paired with each run; {args.runs} runs per command")
            for name, argv in commands.items():
                wall, floor_wall, ratio, rss = measure([tradsys, *argv], floor, env, args.runs)
                print(f"{name:>20}: {wall * 1000:5.0f} ms (floor {floor_wall * 1000:3.0f} ms)  {ratio:4.2f}x floor  {rss:3.0f} MB")
        finally:
            daemon.kill()
            daemon.proc.wait()


if __name__ == "__main__":
    main()
