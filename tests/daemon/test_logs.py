"""Structured logs: both formats, redaction, idempotent setup."""

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from tradsys.daemon.auth import issue_token
from tradsys.daemon.logs import log_event, redact, setup_logging

JWT = issue_token(bytes(32), "admin")
log = logging.getLogger("tradsys.test")


@pytest.fixture(autouse=True)
def restore_tradsys_logger() -> Iterator[None]:
    """setup_logging changes process-wide state; give other tests the logger back as it was."""
    root = logging.getLogger("tradsys")
    saved = (root.handlers[:], root.level, root.propagate)
    yield
    root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_text_line() -> None:
    out = io.StringIO()
    setup_logging("text", "info", out)
    log_event(log, "info", "order.accepted", id="17", account="a1", symbol="BTC-USD", note="two words", qty=0.5)
    [line] = lines(out)
    assert re.fullmatch(
        r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  order\.accepted id=17 account=a1 symbol=BTC-USD '
        r'note="two words" qty=0\.5',
        line,
    ), line


def test_json_line() -> None:
    out = io.StringIO()
    setup_logging("json", "debug", out)
    log_event(log, logging.DEBUG, "order.accepted", id="17", qty=3, accounts=["a1"], event="clash")
    log.info("plain message %s", "here")
    first, second = (json.loads(line) for line in lines(out))
    assert first["level"] == "debug" and first["logger"] == "tradsys.test" and first["event"] == "order.accepted"
    assert (first["id"], first["qty"], first["accounts"], first["field_event"]) == ("17", 3, ["a1"], "clash")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert second["event"] == "plain message here"


def test_level_filters() -> None:
    out = io.StringIO()
    setup_logging("text", "warning", out)
    log_event(log, "info", "quiet")
    log_event(log, "warning", "loud")
    assert [line.split()[2] for line in lines(out)] == ["loud"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_redaction(fmt: str) -> None:
    out = io.StringIO()
    setup_logging(fmt, "info", out)
    fields = {"token": "plain-secret-1", "api_secret": "plain-secret-2", "Authorization": "Bearer x", "password": "hunter2"}
    log_event(log, "info", "client.connected", peer="10.0.0.1", header=f"Bearer {JWT}", nested={"jwt": JWT}, **fields)
    log.warning("refused %s", JWT)
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        log.exception("boom")
    text = out.getvalue()
    assert JWT not in text and JWT.split(".")[1] not in text
    assert not any(value in text for value in ("plain-secret", "Bearer x", "hunter2"))
    assert "10.0.0.1" in text and "[redacted]" in text and "ValueError" in text
    if fmt == "json":
        entries = [json.loads(line) for line in lines(out) if line.startswith("{")]
        assert entries[0]["token"] == "[redacted]" and entries[0]["header"] == "Bearer [redacted]"
        assert entries[1]["event"] == "refused [redacted]"


def test_redaction_does_not_touch_the_callers_fields() -> None:
    setup_logging("json", "info", io.StringIO())
    fields = {"token": "keep-me"}
    log.info("event", extra={"fields": fields})
    assert fields == {"token": "keep-me"}


def test_redact() -> None:
    assert redact({"a": [JWT, {"secret_key": 1}], "b": 2}) == {"a": ["[redacted]", {"secret_key": "[redacted]"}], "b": 2}
    assert redact("eyJ but not a jwt") == "eyJ but not a jwt"


def test_setup_twice_keeps_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("text", "info", first)
    setup_logging("json", "info", second)
    assert len(logging.getLogger("tradsys").handlers) == 1
    log_event(log, "info", "once")
    assert first.getvalue() == "" and len(lines(second)) == 1


@pytest.mark.parametrize(("fmt", "level", "message"), [("xml", "info", "log format"), ("text", "loud", "log level")])
def test_setup_refuses_bad_values(fmt: str, level: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        setup_logging(fmt, level, io.StringIO())
