"""`tradsys replay` as a process: its fast codec (orjson) must write exactly what the reference
pipeline writes (the standard library's decoder with exact decimals, the engine, the standard
library's compact encoder), on ordinary input and on the input where the two libraries differ."""

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from tradsys.engine import Rejected, Venue, VenueConfig
from tradsys.engine.commands import BadCommand, apply, event_dict, resting_dicts

ROOT = Path(__file__).resolve().parents[2]


def reference(data: bytes, risk: bool = True) -> tuple[bytes, list[str]]:
    """What replay printed when it used the standard library's json throughout."""

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not a number")

    venue = Venue(config=VenueConfig(risk=risk))
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    out, errors = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            events = apply(venue, json.loads(raw.decode(), parse_float=Decimal, parse_constant=no_constants))
        except (ValueError, BadCommand, Rejected) as exc:
            errors.append(f"line {number}: {exc}")
            continue
        out.extend(dumps(event_dict(venue, e)) for e in events)
    out.extend(dumps(r) for r in resting_dicts(venue))
    return "".join(line + "\n" for line in out).encode(), errors


def replay(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tradsys", "replay", str(path), *args], capture_output=True, timeout=60)


def test_example_file_matches_the_reference() -> None:
    path = ROOT / "examples" / "orders.jsonl"
    done = replay(path)
    out, errors = reference(path.read_bytes())
    assert done.stdout == out
    assert b'"event":"filled"' in out
    assert done.returncode == (1 if errors else 0)


def test_where_orjson_and_the_standard_library_differ(tmp_path: Path) -> None:
    lines = [
        # numbers with a fraction: exact decimals, never binary floats (0.1 + 0.2 style drift)
        '{"op":"new","id":"f1","account":"a","symbol":"BTC-USD","side":"sell","price":60000.1,"qty":0.3,"ts":1}',
        '{"op":"new","id":"f2","account":"b","symbol":"BTC-USD","side":"buy","price":60000.10,"qty":0.1,"ts":2}',
        # non-ASCII ids and accounts: escaped as \\uXXXX, as the reference encoder does
        '{"op":"new","id":"ordre-\u00e9t\u00e9","account":"\u00fcser","symbol":"BTC-USD","side":"buy","price":"59000","qty":"0.2","ts":3}',
        # a lone surrogate orjson refuses and the reference reads
        '{"op":"new","id":"s\\ud800","account":"a","symbol":"BTC-USD","side":"buy","price":"59000","qty":"0.1","ts":4}',
        # an integer beyond 64 bits
        '{"op":"new","id":"big","account":"a","symbol":"BTC-USD","side":"buy","price":"59000","qty":"0.1","ts":123456789012345678901234567890}',
        '{"op":"new","id":"nan","account":"a","symbol":"BTC-USD","side":"buy","price":NaN,"qty":"0.1","ts":5}',
        "not json at all",
        "",
        '{"op":"new","id":"nested","account":"a","symbol":"BTC-USD","side":"buy","price":["1.5"],"qty":"0.1","ts":6}',
        '{"op":"cancel","id":"f1","ts":7}',
    ]
    data = "\n".join(lines).encode() + b"\n\xff\xfe not utf-8\n"
    path = tmp_path / "odd.jsonl"
    path.write_bytes(data)
    for args in ((), ("--no-risk",)):
        done = replay(path, *args)
        out, errors = reference(data, risk=not args)
        assert done.stdout == out, args
        assert done.stderr.decode().splitlines()[:-1] == errors
        assert done.returncode == 1
    assert b'"id":"ordre-\\u00e9t\\u00e9"' in out
    assert b'"qty":"0.1"' in out  # the fill of f2 against f1, exactly 0.1


def test_stdin_is_read_as_bytes(tmp_path: Path) -> None:
    data = (ROOT / "examples" / "orders.jsonl").read_bytes()
    done = subprocess.run([sys.executable, "-m", "tradsys", "replay", "-"], input=data, capture_output=True, timeout=60)
    assert done.stdout == reference(data)[0]
