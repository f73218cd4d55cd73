"""Sweep throughput: one grid of sma_cross over 1 M one-minute bars, in combinations per second, on
1 worker, on all cores, and as Ray tasks on a Ray head this script starts on this machine (on
loopback, with as many CPUs as the cores).

Each figure is a whole sweep as `tradsys backtest sweep` runs it, after the data file is read:
writing the data once for the workers, starting them (Ray: connecting and starting its workers for
the job), every combination, the results. The rows of the three runs must be the same; the last
line says whether they were.

    python bench/sweep.py [--rows 1000000] [--dir /tmp/tradsys-bench] [--repeat 1] [--no-ray]
        [--grid fast=5,10,15,20,30,40 --grid slow=50,75,100,150,200,300]
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.backtest.sweep.helpers import RAY_ENV  # noqa: E402

os.environ.update(RAY_ENV)  # before Ray is imported: the local head and its workers on loopback only

from backtest import ensure  # noqa: E402  (bench/backtest.py: the seeded data file, made once)
from tests.backtest.sweep.ray_head import local_head  # noqa: E402
from tradsys.backtest.sweep import SweepSettings, parse_grid, run_sweep  # noqa: E402
from tradsys.backtest.sweep.local import default_workers  # noqa: E402
from tradsys.data import MarketData, load_market_data  # noqa: E402
from tradsys.engine.strategy import SmaCross  # noqa: E402


def sweep(data: MarketData, grid: dict[str, list[str]], workers: int | None, ray: str | None) -> tuple[float, float, list]:
    """(wall seconds, seconds inside the combinations' backtests summed, rows)."""
    settings = SweepSettings("sma_cross", {"quantity": "1"}, grid=grid, workers=workers, ray=ray)
    began = time.perf_counter()
    report = run_sweep(data, settings)
    took = time.perf_counter() - began
    failed = [r for r in report.results if r["state"] != "stopped"]
    assert not failed, failed[0]
    inside = sum(r["elapsed_s"] for r in report.results)
    return took, inside, sorted((str(sorted(r["params"].items())), r["metrics"]) for r in report.results)


def line(name: str, combos: int, times: list[tuple[float, float]]) -> str:
    rates = sorted(combos / wall for wall, _ in times)
    return (f"{name}: {combos} combinations in {min(w for w, _ in times):.2f}-{max(w for w, _ in times):.2f}s = "
            f"{rates[0]:.2f}-{rates[-1]:.2f} combinations/s over {len(times)} run(s); a combination's backtest "
            f"took {min(i for _, i in times) / combos:.2f}-{max(i for _, i in times) / combos:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tradsys-bench"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--grid", action="append", default=None)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    grid = parse_grid(args.grid or ["fast=5,10,15,20,30,40", "slow=50,75,100,150,200,300"], SmaCross.params)
    data = load_market_data(ensure("bars", args.rows, args.dir))
    combos = math.prod(len(values) for values in grid.values())
    cores = default_workers()
    print(f"sma_cross grid {grid} over {data.rows:,} bars; {cores} cores")
    results: dict[str, Any] = {}
    for name, workers in (("1 worker", 1), (f"{cores} workers", cores)):
        times: list[tuple[float, float]] = []
        for _ in range(args.repeat):
            wall, inside, results[name] = sweep(data, grid, workers, None)
            times.append((wall, inside))
        print(line(name, combos, times), flush=True)
    if not args.no_ray:
        with local_head(cpus=cores) as address:
            times: list[tuple[float, float]] = []
            for _ in range(args.repeat):
                wall, inside, results["ray"] = sweep(data, grid, None, address)
                times.append((wall, inside))
            print(line(f"Ray, a local head with {cores} CPUs", combos, times), flush=True)
    first = next(iter(results.values()))
    print(f"same results in every run: {'yes' if all(r == first for r in results.values()) else 'NO'}")


if __name__ == "__main__":
    main()
