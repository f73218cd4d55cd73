"""Where TradSys keeps its state: one rule for the daemon and the CLI.

A module of its own so that the CLI finds the home without importing the daemon's config.
"""

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_HOME = Path("~/.tradsys")


def resolve_home(explicit: Path | str | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """`--home` > `TRADSYS_HOME` > `~/.tradsys`, made absolute."""
    home = explicit if explicit is not None else env.get("TRADSYS_HOME") or DEFAULT_HOME
    return Path(home).expanduser().absolute()
