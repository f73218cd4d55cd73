"""The one duration grammar (tradsys.durations): a number and a unit, ms s m h d w."""

import pytest

from tradsys.durations import DurationError, grammar, parse_ns, parse_seconds, split_duration

S = 1_000_000_000


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("7d", 604_800.0), ("2w", 1_209_600.0),
    ("1.5m", 90.0), ("0.5s", 0.5), (".5m", 30.0), ("1.s", 1.0), ("0s", 0.0), ("0010s", 10.0),
])
def test_seconds(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize(("text", "ns"), [
    ("1ms", 1_000_000), ("90s", 90 * S), ("1.5m", 90 * S), ("4h", 14_400 * S), ("1d", 86_400 * S), ("1w", 604_800 * S),
    ("0.000000001s", 1), ("123456789.123456789s", 123_456_789_123_456_789),
])
def test_nanoseconds_are_exact(text: str, ns: int) -> None:
    assert parse_ns(text) == ns


def test_finer_than_a_nanosecond_is_refused() -> None:
    with pytest.raises(DurationError, match="nanoseconds"):
        parse_ns("0.0000000001s")


@pytest.mark.parametrize("text", [
    "", "s", "m5", "5", "-5s", "+5s", "5 s", " 5s", "5s ", "5S", "5M", "5y", "5us", "5sec", "1..5s", "1.5.2s",
    "١s", "5e3s", "inf", "nan", "5ms5",
])
def test_refused(text: str) -> None:
    with pytest.raises(DurationError, match="is not a duration: expected a number followed by ms, s, m, h, d or w"):
        parse_seconds(text)


@pytest.mark.parametrize(("value", "seconds"), [("30", 30.0), ("0.25", 0.25), (7, 7.0), (2.5, 2.5), (-3, -3.0)])
def test_bare_numbers_are_seconds_where_allowed(value: object, seconds: float) -> None:
    assert parse_seconds(value, bare=True) == seconds
    with pytest.raises(DurationError):
        parse_seconds(value)


@pytest.mark.parametrize("value", [True, None, b"5s", [5]])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(DurationError):
        parse_seconds(value, bare=True)


@pytest.mark.parametrize("text", ["1.5m", "01m", "00s", ".5s", "1.s"])
def test_whole_counts(text: str) -> None:
    with pytest.raises(DurationError, match="a whole number"):
        parse_seconds(text, whole=True)
    assert parse_seconds("10m", whole=True) == 600.0
    assert parse_seconds("0s", whole=True) == 0.0


def test_split_keeps_the_spelling() -> None:
    assert split_duration("1.50h") == ("1.50", "h")
    assert split_duration("12", bare=True) == ("12", "s")


def test_the_message_lists_the_grammar() -> None:
    assert grammar() == "a number followed by ms, s, m, h, d or w, as in 30s, 1.5m, 2h, 7d"
    assert grammar(bare=True).endswith("; a bare number is seconds")
    with pytest.raises(DurationError) as caught:
        parse_seconds("soon")
    assert str(caught.value) == f"'soon' is not a duration: expected {grammar()}"


def test_durations_is_light() -> None:
    """The CLI imports it: it must not pull in the engine or anything heavy."""
    import subprocess
    import sys

    code = "import sys, tradsys.durations; print(sorted(m for m in sys.modules if m.startswith('tradsys')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tradsys', 'tradsys.durations']"


def test_every_caller_names_the_grammar() -> None:
    """Alert rules, bar intervals, strategy parameters and token lifetimes read the same grammar and
    say so when refusing; each keeps its own range."""
    from tradsys.cli.auth import parse_ttl
    from tradsys.daemon.alerts import parse_duration
    from tradsys.engine.bars import parse_interval
    from tradsys.engine.strategy import Duration, Param, resolve_params

    def param(value: object) -> object:
        return resolve_params({"every": Param(Duration, Duration(1))}, {"every": value})["every"]

    for call in (parse_duration, parse_interval, parse_ttl, param):
        with pytest.raises(ValueError, match="followed by ms, s, m, h, d or w"):
            call("soon")
    assert (parse_duration("2w"), parse_interval("2w"), parse_ttl("2w").total_seconds(), param("2w")) == (
        1_209_600.0, 1_209_600 * S, 1_209_600.0, 1_209_600.0)
    assert (parse_duration("1500ms"), param("1500ms")) == (1.5, 1.5)
    for refused in ("1500ms", "0s"):
        with pytest.raises(ValueError, match="positive whole number of seconds"):
            parse_interval(refused)
    with pytest.raises(ValueError, match="above zero"):
        parse_ttl("0h")
    with pytest.raises(ValueError):
        param("-1s")
