"""The daemon's configuration: defaults < config.toml < TRADSYS_* environment < CLI overrides.

Every value is converted and validated once, here, so the rest of the daemon can trust a `Config`
and a typo in a known setting fails at start with a message naming where it was written.
"""

import dataclasses
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from tradsys.daemon.logs import LEVELS, redact
from tradsys.durations import parse_seconds
from tradsys.engine import SelfTradePrevention
from tradsys.home import resolve_home

ENV_PREFIX = "TRADSYS_"


class ConfigError(Exception):
    """A setting that cannot be used; the message names its source (file, variable or flag)."""


S = TypeVar("S")


def section(cls: type[S], name: str, raw: Mapping[str, Any]) -> S:
    """A settings dataclass from its config.toml table `[name]`: unknown keys are refused with the
    known ones listed; a number must be positive (and is made the field's own type); a flag or a
    text must be one; a tuple field takes a list of texts."""
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(cls, key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ConfigError(f"[{name}] {key} must be a list of texts, got {value!r}")
            values[key] = tuple(value)
        elif isinstance(default, (bool, str)):
            if type(value) is not type(default):
                raise ConfigError(f"[{name}] {key} must be a {type(default).__name__}, got {value!r}")
            values[key] = value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"[{name}] {key} must be a positive number, got {value!r}")
            values[key] = type(default)(value)
    return cls(**values)


@dataclass(frozen=True)
class Config:
    home: Path = field(default_factory=resolve_home)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_max_connections: int = 2000
    """Connections open on the HTTP port at once (plain HTTP, REST and WebSocket together); the next
    is answered 503 and closed. Each holds a file descriptor and some memory until it closes."""
    http_idle_seconds: float = 60.0
    """A plain HTTP connection with no request under way is closed after this long."""
    rest_workers: int = 8
    """Threads serving REST calls (they may wait on the engine or the store)."""
    rest_max_inflight: int = 256
    """REST calls being served at once; the next is refused with 429."""
    log_format: str = "text"
    log_level: str = "info"
    db_path: Path = Path("tradsys.db")
    """Relative paths are taken relative to `home`."""
    simulate: bool = True
    replay_data: Path | None = None
    replay_speed: float = 1.0
    sim_seed: int | None = None
    sim_taker_rate: float = 4.0
    """Simulated market: noise taker orders per second per symbol (`[market] taker_rate`)."""
    initial_balance: Decimal = Decimal("1000000")
    currency: str = "USD"
    maker_fee_bps: Decimal = Decimal("1")
    taker_fee_bps: Decimal = Decimal("5")
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_RESTING
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = 4 * 1024 * 1024
    max_streams: int = 5000
    """Open gRPC streams at most; the next is refused with RESOURCE_EXHAUSTED."""
    snapshot_every: int = 100_000
    """Commands between engine snapshots."""
    max_queued: int = 50_000
    """Commands waiting for the engine at most; past it a job is refused (RESOURCE_EXHAUSTED)."""
    durability: str = "fsync"
    """"fsync": an acknowledged command survives power loss (fsync per group commit).
    "process": it survives the daemon being killed (SIGKILL, crash) but not the machine losing
    power; commits skip the fsync, which is most of a unary order's latency on slow disks."""
    feeds: tuple[str, ...] = ()
    """Live exchange feeds, `EXCHANGE:SYMBOL` (`--feed`, `TRADSYS_FEEDS` comma-separated); when given they
    replace `[feeds] symbols` of config.toml, whose other keys `tradsys.exchanges.feed_config` reads."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The parsed config.toml, for sections other modules own (alerts, strategies, ...)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "db_path", self.home / self.db_path)

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def secret_path(self) -> Path:
        return self.home / "secret.key"

    @property
    def admin_token_path(self) -> Path:
        return self.home / "admin.token"

    @property
    def pid_path(self) -> Path:
        return self.home / "daemon.pid"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


# -- conversion: each converter takes a raw value and the directory relative paths start from ------

Converter = Callable[[object, Path], object]


def _text(value: object, base: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _int(value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None
    if high is not None and not low <= number <= high:
        raise ValueError(f"expected an integer in {low}..{high}, got {number}")
    if number < low:
        raise ValueError(f"expected an integer >= {low}, got {number}")
    return number


def _port(value: object, base: Path) -> int:
    return _int(value, 1, 65535)


def _positive_int(value: object, base: Path) -> int:
    return _int(value, 1)


def _seed(value: object, base: Path) -> int:
    return _int(value, 0)


def _bool(value: object, base: Path) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
    raise ValueError(f"expected true or false, got {value!r}")


def _number(value: object, zero: bool) -> float:
    """A finite number above zero, or from zero on when `zero` is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not (0 <= number if zero else 0 < number) or number == float("inf"):
        raise ValueError(f"expected a {'non-negative' if zero else 'positive'} number, got {value!r}")
    return number


def _speed(value: object, base: Path) -> float:
    return _number(value, zero=False)


def _rate(value: object, base: Path) -> float:
    """Per second; 0 turns it off."""
    return _number(value, zero=True)


def _seconds(value: object, base: Path) -> float:
    """A positive duration: 90, "90s", "1.5m" (a bare number is seconds)."""
    seconds = parse_seconds(value, bare=True)
    if not 0 < seconds < float("inf"):
        raise ValueError(f"expected a positive duration, got {value!r}")
    return seconds


def _decimal(value: object, base: Path) -> Decimal:
    """Money and fees are exact: floats are refused, as in the engine."""
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ValueError(f"expected a decimal string such as \"1.5\", got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"expected a finite decimal number, got {value!r}")
    return number


def _balance(value: object, base: Path) -> Decimal:
    number = _decimal(value, base)
    if number < 0:
        raise ValueError(f"expected a non-negative amount, got {value!r}")
    return number


def _path(value: object, base: Path) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"expected a path, got {value!r}")
    return base / Path(value).expanduser()


def _choice(*options: str) -> Converter:
    def convert(value: object, base: Path) -> str:
        word = value.strip().lower() if isinstance(value, str) else value
        if word not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return word

    return convert


def _stp(value: object, base: Path) -> SelfTradePrevention:
    try:
        return SelfTradePrevention(str(value))
    except ValueError:
        raise ValueError(f"expected one of {', '.join(SelfTradePrevention)}, got {value!r}") from None


def _feeds(value: object, base: Path) -> tuple[str, ...]:
    """`EXCHANGE:SYMBOL` specs: a list (flags) or one comma-separated text (environment)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"expected EXCHANGE:SYMBOL specs such as binance:BTC/USDT, got {value!r}")
    specs = tuple(str(item).strip() for item in items if str(item).strip())
    for spec in specs:
        exchange, colon, symbol = spec.partition(":")
        if not (colon and exchange.strip() and symbol.strip()):
            raise ValueError(f"expected EXCHANGE:SYMBOL such as binance:BTC/USDT, got {spec!r}")
    return specs


def _optional(convert: Converter) -> Converter:
    """An environment variable set to "" or "none" clears an optional setting."""

    def optional(value: object, base: Path) -> object:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return convert(value, base)

    return optional


_CONVERTERS: dict[str, Converter] = {
    "home": lambda value, base: resolve_home(_path(value, base)),
    "grpc_host": _text,
    "grpc_port": _port,
    "http_host": _text,
    "http_port": _port,
    "http_max_connections": _positive_int,
    "http_idle_seconds": _seconds,
    "rest_workers": _positive_int,
    "rest_max_inflight": _positive_int,
    "log_format": _choice("text", "json"),
    "log_level": _choice(*LEVELS),
    "db_path": _path,
    "simulate": _bool,
    "replay_data": _optional(_path),
    "replay_speed": _speed,
    "sim_seed": _optional(_seed),
    "sim_taker_rate": _rate,
    "initial_balance": _balance,
    "currency": _text,
    "maker_fee_bps": _decimal,
    "taker_fee_bps": _decimal,
    "stp": _stp,
    "tls_cert": _optional(_path),
    "tls_key": _optional(_path),
    "max_message_bytes": _positive_int,
    "max_streams": _positive_int,
    "snapshot_every": _positive_int,
    "max_queued": _positive_int,
    "durability": _choice("fsync", "process"),
    "feeds": _feeds,
}

# config.toml tables: [table] key -> field. Fields may also be written as top-level keys.
_TABLES: dict[str, dict[str, str]] = {
    "grpc": {"host": "grpc_host", "port": "grpc_port", "max_message_bytes": "max_message_bytes",
             "max_streams": "max_streams"},
    "http": {"host": "http_host", "port": "http_port", "max_connections": "http_max_connections",
             "idle_seconds": "http_idle_seconds", "rest_workers": "rest_workers",
             "rest_max_inflight": "rest_max_inflight"},
    "log": {"format": "log_format", "level": "log_level"},
    "db": {"path": "db_path", "snapshot_every": "snapshot_every", "durability": "durability"},
    "engine": {"max_queued": "max_queued"},
    "market": {"simulate": "simulate", "replay_data": "replay_data", "replay_speed": "replay_speed", "seed": "sim_seed",
               "taker_rate": "sim_taker_rate"},
    "accounts": {"initial_balance": "initial_balance", "currency": "currency"},
    "fees": {"maker_bps": "maker_fee_bps", "taker_bps": "taker_fee_bps"},
    "venue": {"stp": "stp"},
    "tls": {"cert": "tls_cert", "key": "tls_key"},
}


def _convert(name: str, value: object, base: Path, source: str) -> object:
    try:
        return _CONVERTERS[name](value, base)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def _from_file(path: Path, doc: Mapping[str, Any]) -> dict[str, object]:
    """Known tables are strict (typo protection); unknown tables belong to other modules."""
    values: dict[str, object] = {}
    for key, value in doc.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {key} must be a table [{key}]")
            for sub, sub_value in value.items():
                if sub not in _TABLES[key]:
                    known = ", ".join(_TABLES[key])
                    raise ConfigError(f"{path}: unknown key {sub!r} in [{key}] (known: {known})")
                name = _TABLES[key][sub]
                values[name] = _convert(name, sub_value, path.parent, f"{path}: [{key}] {sub}")
        elif isinstance(value, dict):
            continue
        elif key == "home":
            raise ConfigError(f"{path}: home cannot be set in the file that lives in it; use TRADSYS_HOME or --home")
        elif key in _CONVERTERS:
            values[key] = _convert(key, value, path.parent, f"{path}: {key}")
        else:
            raise ConfigError(f"{path}: unknown setting {key!r}")
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, object]:
    """Unknown TRADSYS_* variables are ignored: other tools (the CLI's token, ...) use the prefix too."""
    values: dict[str, object] = {}
    for name in _CONVERTERS:
        var = ENV_PREFIX + name.upper()
        if name != "home" and var in env:
            values[name] = _convert(name, env[var], Path.cwd(), f"environment variable {var}")
    return values


def _from_overrides(overrides: Mapping[str, object]) -> dict[str, object]:
    """None means "flag not given", so the CLI can pass every option through."""
    values: dict[str, object] = {}
    for name, value in overrides.items():
        if name not in _CONVERTERS:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _convert(name, value, Path.cwd(), f"--{name.replace('_', '-')}")
    return values


def load_config(
    path: Path | None = None, env: Mapping[str, str] = os.environ, overrides: Mapping[str, object] = {}
) -> Config:
    """The effective configuration; a missing default config.toml is fine, a missing explicit one is not."""
    flags = _from_overrides(overrides)
    home = flags.pop("home", None)
    home = home if isinstance(home, Path) else resolve_home(env=env)
    file = path.absolute() if path is not None else home / "config.toml"
    doc: dict[str, Any] = {}
    if path is not None or file.exists():
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist")
        doc = _read_toml(file)
    values = _from_file(file, doc) | _from_env(env) | flags
    config = Config(home=home, raw=doc, **values)  # type: ignore[arg-type]
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("tls_cert and tls_key must be set together")
    if (config.grpc_host, config.grpc_port) == (config.http_host, config.http_port):
        raise ConfigError(f"gRPC and HTTP cannot both listen on {config.grpc_host}:{config.grpc_port}")
    return config


def redacted(config: Config) -> dict[str, Any]:
    """The effective config as JSON-ready data for the start-up log, secrets masked."""
    data = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    result: dict[str, Any] = json.loads(json.dumps(redact(data), default=str))
    return result
