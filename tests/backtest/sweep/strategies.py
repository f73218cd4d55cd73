"""Strategies for the sweep tests, loaded as FILE.py:Class (also by Ray workers, which get this file's text)."""

import os
import time

from tradsys.engine.strategy import Param, SmaCross


class Gate(SmaCross):
    """sma_cross whose runs with slow >= `block` wait for the file `gate` to exist (at most `wait_s`):
    a sweep that stops there can be interrupted at a known point."""

    params = {**SmaCross.params, "gate": Param(str, ""), "block": Param(int, 10**9), "wait_s": Param(float, 120.0)}

    def on_start(self) -> None:
        if self.p.slow >= self.p.block:
            deadline = time.monotonic() + self.p.wait_s
            while not os.path.exists(self.p.gate):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.p.gate} did not appear")
                time.sleep(0.02)
        super().on_start()


class DiesOnce(SmaCross):
    """sma_cross whose run with slow == `die_at` kills its process the first time (it leaves `marker`)."""

    params = {**SmaCross.params, "marker": Param(str, ""), "die_at": Param(int, -1)}

    def on_start(self) -> None:
        if self.p.slow == self.p.die_at and not os.path.exists(self.p.marker):
            with open(self.p.marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(3)
        super().on_start()
