"""Finding a strategy class by name: a built-in (`sma_cross`) or a user file (`path/to/file.py:ClassName`)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from tradsys.engine.strategy.base import Strategy, check_strategy_class
from tradsys.engine.strategy.builtins import BUILTINS


class StrategyNotFound(LookupError):
    pass


def load_strategy(spec: str) -> type[Strategy]:
    """A built-in by name, or `FILE.py:ClassName` (ClassName may be omitted when the file defines one
    Strategy subclass)."""
    if spec in BUILTINS:
        return BUILTINS[spec]
    path_text, sep, class_name = spec.partition(":")
    if not path_text.endswith(".py"):
        raise StrategyNotFound(f"unknown strategy {spec!r}; built-ins: {', '.join(BUILTINS)}; or FILE.py:ClassName")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise StrategyNotFound(f"{path}: no such file")
    module_name = "tradsys_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise StrategyNotFound(f"{path}: cannot be imported")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    if class_name:
        cls = getattr(module, class_name, None)
        if cls is None:
            raise StrategyNotFound(f"{path}: no class {class_name!r}")
        try:
            return check_strategy_class(cls)
        except TypeError as exc:
            raise StrategyNotFound(f"{path}: {exc}") from None
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy and v.__module__ == module_name]
    if len(found) != 1:
        raise StrategyNotFound(f"{path}: name the class (FILE.py:ClassName); found {len(found)} Strategy subclasses")
    return found[0]
