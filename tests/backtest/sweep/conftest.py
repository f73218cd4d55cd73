"""Sweep fixtures: bars in a freqtrade file, and a Ray head on loopback that the whole session shares."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.backtest.sweep.helpers import RAY_ENV, hourly
from tests.backtest.sweep.ray_head import local_head


@pytest.fixture(scope="session")
def bars_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hourly bars as freqtrade writes them (the symbol comes from the name)."""
    path = tmp_path_factory.mktemp("sweep-data") / "BTC_USDT-1h.feather"
    hourly().rename({"ts": "date"}).drop("symbol").with_columns(
        pl.from_epoch("date", time_unit="ns").dt.replace_time_zone("UTC")).write_ipc(path)
    return path


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A Ray head on loopback (`ray_head.local_head`), with this process connected to it as the driver
    while the module's tests run, so that Ray starts once and its workers once (all the Ray tests are
    in test_ray.py). It ends with the module, not the session: its idle processes (a few % of a core,
    hundreds of MB) would otherwise sit beside the timing-sensitive daemon tests that follow."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in RAY_ENV.items():
            patch.setenv(key, value)
        assert sys.modules.get("ray") is None, "ray was imported before RAY_ENV was set"
        sys.modules.pop("ray", None)
        import ray
        from ray._private import ray_constants

        assert not ray_constants.ENABLE_RAY_CLUSTER  # else Ray would use the machine's address, not loopback
        with local_head() as address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            try:
                yield address
            finally:
                ray.shutdown()
