"""`tradsys replay FILE`: run a JSONL command stream through a fresh engine and print its events."""

import json
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TextIO

import orjson
import typer

from tradsys.engine import Rejected, Venue, VenueConfig
from tradsys.engine.commands import BadCommand, apply, event_dict, load_limits, resting_dicts


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


_exact = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constants).decode
"""The reference decoder: numbers with a fraction become exact Decimals, NaN/Infinity are refused."""
_ascii_dumps = json.JSONEncoder(separators=(",", ":")).encode


def decode(line: bytes) -> Any:
    """One command. orjson reads it unless it holds what orjson would read otherwise than the
    reference decoder: a float (inexact), a nested value, or anything orjson refuses (the reference
    decoder then gives the error, or reads what orjson cannot, such as a very large integer)."""
    try:
        cmd = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _exact(line.decode())
    if isinstance(cmd, dict):
        for value in cmd.values():
            if isinstance(value, (float, list, dict)):
                return _exact(line.decode())
    return cmd


def encode(doc: dict[str, Any]) -> bytes:
    """One output line, as the reference encoder writes it (compact, non-ASCII escaped): orjson's
    own unless it holds non-ASCII text, which orjson writes as UTF-8 or (a lone surrogate) refuses."""
    try:
        data = orjson.dumps(doc)
        if data.isascii():
            return data + b"\n"
    except TypeError:
        pass
    return _ascii_dumps(doc).encode() + b"\n"


def _read_limits(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text, parse_float=Decimal)
    return tomllib.loads(text)


SHOWN = 5
"""Bad lines reported one by one; past this many only their count is, and a file whose first this
many commands are all bad is not read further: it is not a command stream."""


@dataclass
class Summary:
    """What a replay did, as its last line under --json."""

    lines: int = 0
    commands: int = 0
    bad: int = 0
    events: int = 0
    resting: int = 0
    stopped: bool = False
    """True when the input was given up on: its first SHOWN commands were all bad."""


def run(lines: Iterable[bytes], out: BinaryIO, err: TextIO, venue: Venue) -> Summary:
    """Replay `lines` into `venue`, writing events to `out` and the first SHOWN bad lines to `err`."""
    summary = Summary()
    chunk: list[bytes] = []
    for number, line in enumerate(lines, 1):
        summary.lines = number
        if not line.strip():
            continue
        try:
            events = apply(venue, decode(line))
        except (ValueError, BadCommand, Rejected) as exc:
            summary.bad += 1
            if summary.bad <= SHOWN:
                err.write(f"line {number}: {exc}\n")
            if summary.bad == SHOWN and summary.commands == 0:
                summary.stopped = True
                break
            continue
        summary.commands += 1
        summary.events += len(events)
        for event in events:
            chunk.append(encode(event_dict(venue, event)))
        if len(chunk) >= 4096:
            out.write(b"".join(chunk))
            chunk.clear()
    if not summary.stopped:
        resting = resting_dicts(venue)
        summary.resting = len(resting)
        chunk.extend(encode(r) for r in resting)
    out.write(b"".join(chunk))
    return summary


def replay(
    file: Annotated[Path, typer.Argument(help="JSONL commands, one per line; '-' reads stdin.", allow_dash=True)],
    no_risk: Annotated[bool, typer.Option("--no-risk", help="Skip pre-trade risk checks.")] = False,
    risk: Annotated[
        Path | None, typer.Option("--risk", help="Limits file (TOML, or JSON by its .json suffix).", exists=True, dir_okay=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with a summary line: {\"event\": \"summary\", \"lines\", "
                                                       "\"commands\", \"bad\", \"events\", \"resting\", \"stopped\"}.")] = False,
) -> None:
    """Run a command stream through the engine and print what happened, as JSON lines. Bad lines are
    reported on stderr (the first few, then a count): exit 1; a file that is not JSON lines of
    commands is given up on after a few lines: exit 2.

    Example: tradsys replay examples/orders.jsonl --json
    """
    venue = Venue(config=VenueConfig(risk=not no_risk))
    if risk is not None:
        try:
            load_limits(venue, _read_limits(risk))
        except (ValueError, Rejected, AttributeError) as exc:
            typer.echo(f"error: {risk}: {exc}", err=True)
            raise typer.Exit(2) from None
    if str(file) == "-":
        summary = run(sys.stdin.buffer, sys.stdout.buffer, sys.stderr, venue)
    else:
        try:
            handle = file.open("rb")
        except OSError as exc:
            typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        with handle:
            summary = run(handle, sys.stdout.buffer, sys.stderr, venue)
    if as_json:
        sys.stdout.buffer.write(encode({"event": "summary", **asdict(summary)}))
    if summary.stopped:
        typer.echo(f"error: {file}: its first {SHOWN} commands are all bad; is it JSON lines, one command per "
                   f"line (see examples/orders.jsonl)?", err=True)
        raise typer.Exit(2)
    if summary.bad:
        shown = f" (the first {SHOWN} shown)" if summary.bad > SHOWN else ""
        typer.echo(f"{summary.bad} bad line(s) skipped{shown}", err=True)
        raise typer.Exit(1)
