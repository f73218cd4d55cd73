"""Sweep fixtures: bars in a freqtrade file, and a Ray head on loopback that the whole session shares."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.backtest.sweep.helpers import RAY_ENV, hourly
from tests.conftest import eventually, free_port


@pytest.fixture(scope="session")
def bars_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hourly bars as freqtrade writes them (the symbol comes from the name)."""
    path = tmp_path_factory.mktemp("sweep-data") / "BTC_USDT-1h.feather"
    hourly().rename({"ts": "date"}).drop("symbol").with_columns(
        pl.from_epoch("date", time_unit="ns").dt.replace_time_zone("UTC")).write_ipc(path)
    return path


def _free_port_block(size: int) -> int:
    """The first of `size` consecutive ports free on loopback, above Ray's refused 10002-19999."""
    for base in range(20_000, 30_000, size):
        try:
            socks = []
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


@pytest.fixture(scope="session")
def ray_head() -> Iterator[str]:
    """`ray start --head` on loopback ports of ours, with this process connected to it as the driver
    for the whole session (Ray starts its workers once); killed, with every process it started, at
    the end. Yields its address."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in RAY_ENV.items():
            patch.setenv(key, value)
        yield from _head()


def _head() -> Iterator[str]:
    assert "ray" not in sys.modules or sys.modules["ray"] is None, \
        "ray was imported before the Ray fixture set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0"
    sys.modules.pop("ray", None)
    import ray
    from ray._private import ray_constants

    assert not ray_constants.ENABLE_RAY_CLUSTER  # else Ray would use the machine's address, not loopback
    gcs, client, manager, objects = (free_port() for _ in range(4))
    workers = _free_port_block(100)
    temp = tempfile.mkdtemp(prefix="tsray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    log = open(Path(temp) / "head.log", "w")
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
         "--ray-client-server-port", str(client), "--node-manager-port", str(manager), "--object-manager-port",
         str(objects), "--min-worker-port", str(workers), "--max-worker-port", str(workers + 99),
         "--include-dashboard", "false", "--num-cpus", "2", "--temp-dir", temp, "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy())
    address = f"127.0.0.1:{gcs}"
    try:
        def up() -> bool:
            assert head.poll() is None, f"ray start exited: {(Path(temp) / 'head.log').read_text()[-2000:]}"
            return "Ray runtime started" in (Path(temp) / "head.log").read_text()

        eventually(up, timeout=120)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait(timeout=30)
        eventually(lambda: not _group_alive(head.pid), timeout=30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


