"""A Ray head on loopback, for the tests and bench/sweep.py: `ray start --head` on ports of ours, in
a process group of its own, killed with every process it started when the block ends.

The caller's environment must hold RAY_ENV (before `ray` is imported, in a process that imports
it): with it every Ray process binds, and is reached, on 127.0.0.1 only."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.backtest.sweep.helpers import RAY_ENV
from tests.conftest import eventually, free_port


@contextmanager
def local_head(cpus: int = 2) -> Iterator[str]:
    """Yields the head's address (127.0.0.1:PORT) once it is up."""
    assert all(os.environ.get(k) == v for k, v in RAY_ENV.items()), f"set {RAY_ENV} first"
    gcs, client, manager, objects = (free_port() for _ in range(4))
    workers = free_port_block(100)
    temp = Path(tempfile.mkdtemp(prefix="tsray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    log_path = temp / "head.log"
    ray_cli = Path(sys.executable).with_name("ray")
    with log_path.open("w") as log:
        head = subprocess.Popen(
            [str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
             "--ray-client-server-port", str(client), "--node-manager-port", str(manager), "--object-manager-port",
             str(objects), "--min-worker-port", str(workers), "--max-worker-port", str(workers + 99),
             "--include-dashboard", "false", "--num-cpus", str(cpus), "--temp-dir", str(temp),
             "--disable-usage-stats"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            assert head.poll() is None, f"ray start exited: {log_path.read_text()[-2000:]}"
            return "Ray runtime started" in log_path.read_text()

        eventually(up, timeout=120)
        yield f"127.0.0.1:{gcs}"
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)  # SIGTERM would have it drain for 30 s
        except ProcessLookupError:
            pass
        head.wait(timeout=30)
        eventually(lambda: not group_alive(head.pid), timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def free_port_block(size: int) -> int:
    """The first of `size` consecutive ports free on loopback, above Ray's refused 10002-19999."""
    for base in range(20_000, 30_000, size):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free block of ports")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
