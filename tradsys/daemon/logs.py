"""Structured logging for the `tradsys` logger tree: an event name plus key=value fields per line.

Text lines are for people, JSON lines for machines. Both pass through one redaction filter on the
handler, so a token or secret never reaches a log, whatever a caller put in a message or field.
"""

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

ROOT = "tradsys"
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
MASK = "[redacted]"

_SENSITIVE_KEY = re.compile(r"token|secret|passw|authorization|api_?key|cookie|credential", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BARE = re.compile(r'[^\s="\\]+')


def redact(value: Any) -> Any:
    """A copy with sensitive keys masked (at any depth) and JWT-looking text masked in strings."""
    if isinstance(value, Mapping):
        return {k: MASK if _SENSITIVE_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _JWT.sub(MASK, value)
    return value


def log_event(logger: logging.Logger, level: int | str, event: str, /, **fields: object) -> None:
    """`log_event(log, "info", "order.accepted", id="17", account="a1")`."""
    number = level if isinstance(level, int) else _level(level)
    logger.log(number, event, extra={"fields": fields}, stacklevel=2)


def _level(name: str) -> int:
    if name.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {name!r}")
    return int(getattr(logging, name.upper()))


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, "fields", None)
    if fields is None:
        return {}
    return fields if isinstance(fields, Mapping) else {"fields": fields}


class RedactFilter(logging.Filter):
    """Masks secrets in the message, the fields and the traceback before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        record.__dict__["fields"] = redact(_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else ""


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-11-28T01:22:46.123Z INFO  order.accepted id=17 account=a1`"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<5}", record.getMessage()]
        parts += [f"{key}={_text_value(value)}" for key, value in _fields(record).items()]
        exc = _exception(self, record)
        return " ".join(parts) + (f"\n{exc}" if exc else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields keep their JSON types, other values become strings."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in _fields(record).items():
            entry[f"field_{key}" if key in entry else key] = value
        exc = _exception(self, record)
        if exc:
            entry["exc"] = exc
        return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler setup_logging owns, so a second call replaces it instead of adding one."""


def setup_logging(format: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Send the `tradsys` tree to `stream` (default: the current sys.stderr); safe to call again."""
    if format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {format!r}")
    logger = logging.getLogger(ROOT)
    logger.setLevel(_level(level))
    for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(old)
        old.close()
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(RedactFilter())
    logger.addHandler(handler)
    logger.propagate = False
