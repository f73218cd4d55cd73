"""`tradsys replay --no-risk` against a bare book: both whole processes on the same command stream.

The stream is `bench/engine.py`'s (passive adds, cancels, crossing limit and market orders from
50 accounts on BTC-USD), written as JSON lines. The floor is `bench/bare_book.py`, a plain-Python
price-time book with stdlib `json` that writes the same events; the bench checks that both
outputs are identical before it prints the times and their ratio (bare / replay: >= 1.0 means
replay is at least as fast as the bare book).

    python bench/replay.py [--commands 300000] [--seed 7] [--dir /tmp/tradsys-bench]
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import stream  # noqa: E402  (bench/engine.py: the generator both benches share)

from tradsys.engine import OrderType, Side  # noqa: E402

HERE = Path(__file__).resolve().parent
TICK_DIGITS, LOT_DIGITS = 2, 3


def decimal_text(units: int, digits: int) -> str:
    whole, frac = divmod(units, 10**digits)
    return f"{whole}.{frac:0{digits}d}"


def write_stream(path: Path, n: int, seed: int) -> None:
    with path.open("w") as out:
        for cmd in stream(n, seed):
            if cmd[0] == "cancel":
                doc = {"op": "cancel", "id": cmd[1], "ts": cmd[2]}
            else:
                _, oid, account, side, otype, price, qty, ts = cmd
                doc = {"op": "new", "id": oid, "account": account, "symbol": "BTC-USD",
                       "side": "buy" if side is Side.BUY else "sell",
                       "type": "market" if otype is OrderType.MARKET else "limit",
                       "qty": decimal_text(qty, LOT_DIGITS), "tif": "IOC" if otype is OrderType.MARKET else "GTC", "ts": ts}
                if price is not None:
                    doc["price"] = decimal_text(price, TICK_DIGITS)
            out.write(json.dumps(doc, separators=(",", ":")) + "\n")


def timed(argv: list[str], out: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one whole process writing to `out`."""
    with out.open("wb") as sink:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, stdout=sink, check=True)
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tradsys-bench"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    commands = args.dir / f"replay_{args.commands}_{args.seed}.jsonl"
    if not commands.exists():
        write_stream(commands, args.commands, args.seed)
    tradsys = str(Path(sys.executable).with_name("tradsys"))
    bare_out, replay_out = args.dir / "bare.out", args.dir / "replay.out"
    bare = timed([sys.executable, str(HERE / "bare_book.py"), str(commands)], bare_out)
    replay = timed([tradsys, "replay", "--no-risk", str(commands)], replay_out)
    if bare_out.read_bytes() != replay_out.read_bytes():
        sys.exit(f"outputs differ: compare {bare_out} and {replay_out}")
    events = sum(1 for _ in replay_out.open("rb"))
    print(f"commands: {args.commands:,}  events written: {events:,} (identical output)")
    for name, (wall, cpu) in (("bare book", bare), ("tradsys replay --no-risk", replay)):
        print(f"{name}: {wall:.2f} s wall ({args.commands / wall:,.0f} cmd/s), {cpu:.2f} s CPU")
    print(f"ratio (bare / replay wall, >= 1.0 is the target): {bare[0] / replay[0]:.2f}  (CPU: {bare[1] / replay[1]:.2f})")


if __name__ == "__main__":
    main()
