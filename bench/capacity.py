"""Capacity: unary latency while many gRPC streams are open and receiving data.

    python bench/capacity.py [--streams 0,100,1000] [--calls 300] [--blocks 3]

Starts a daemon with the simulated market in a temporary home (loopback only). For each N, blocks
of unary `PlaceOrder` and `GetBook` round trips (from a process of their own) alternate between no
streams open and N StreamBook streams (depth 1, over the three symbols, held by another process:
each receives the top-of-book changes), so the machine's drift cancels in the ratio. Prints p50 per
call kind idle and with N streams, their ratio, what the streams received per second, and the
daemon's peak RSS. Then the PeerJS floods of tests/daemon/test_peerjs.py (anonymous: 25 clients
sending 195 KB OFFERs to 50 absent destinations; authenticated: 500 peers, 6,000 absent
destinations, 360 MB sent), each against a daemon of its own, with the daemon's peak RSS growth.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.capacity import Caller, p50, with_streams  # noqa: E402
from tests.conftest import start_daemon  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", default="0,100,1000")
    parser.add_argument("--calls", type=int, default=300, help="unary calls of each kind per block")
    parser.add_argument("--blocks", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tradsys-capacity-") as tmp:
        d = start_daemon(Path(tmp), "--seed", "3")
        try:
            d.wait_quoted()
            print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, CPython {sys.version.split()[0]}")
            caller = Caller(d, args.calls)
            for n in (int(x) for x in args.streams.split(",")):
                r = with_streams(d, caller, n, args.blocks)
                cells = [f"{k} p50 {p50(r.idle[k]) * 1e6:5.0f} -> {p50(r.loaded[k]) * 1e6:5.0f} us ({r.ratio(k):.2f}x)"
                         for k in ("place", "book")]
                rate = sum(c.rate for c in r.counted) / len(r.counted)
                refused = sum(c.refused for c in r.counted)
                print(f"streams {n:5d}: {'; '.join(cells)}; streams received {rate:.0f} msgs/s, "
                      f"refused {refused}, daemon peak RSS {r.rss_mb:.0f} MB")
            caller.close()
        finally:
            d.kill(15)
    floods = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                             "tests/daemon/test_peerjs.py", "-k", "flood"], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True)
    for line in floods.stdout.splitlines():
        if "flood:" in line:
            print(line.strip())
    if floods.returncode != 0:
        print(f"the flood tests failed:\n{floods.stdout[-2000:]}")


if __name__ == "__main__":
    main()
