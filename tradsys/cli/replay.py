"""`tradsys replay FILE`: run a JSONL command stream through a fresh engine and print its events."""

import json
import sys
import tomllib
from collections.abc import Iterable
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


def run(lines: Iterable[bytes], out: BinaryIO, err: TextIO, venue: Venue) -> int:
    """Replay `lines` into `venue`, writing events to `out`; returns the number of bad lines."""
    bad = 0
    chunk: list[bytes] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events = apply(venue, decode(line))
        except (ValueError, BadCommand, Rejected) as exc:
            bad += 1
            err.write(f"line {number}: {exc}\n")
            continue
        for event in events:
            chunk.append(encode(event_dict(venue, event)))
        if len(chunk) >= 4096:
            out.write(b"".join(chunk))
            chunk.clear()
    chunk.extend(encode(resting) for resting in resting_dicts(venue))
    out.write(b"".join(chunk))
    return bad


def replay(
    file: Annotated[Path, typer.Argument(help="JSONL commands, one per line; '-' reads stdin.", allow_dash=True)],
    no_risk: Annotated[bool, typer.Option("--no-risk", help="Skip pre-trade risk checks.")] = False,
    risk: Annotated[
        Path | None, typer.Option("--risk", help="Limits file (TOML, or JSON by its .json suffix).", exists=True, dir_okay=False)
    ] = None,
) -> None:
    """Run a command stream through the engine and print what happened, as JSON lines.

    Example: tradsys replay examples/orders.jsonl
    """
    venue = Venue(config=VenueConfig(risk=not no_risk))
    if risk is not None:
        try:
            load_limits(venue, _read_limits(risk))
        except (ValueError, Rejected, AttributeError) as exc:
            typer.echo(f"error: {risk}: {exc}", err=True)
            raise typer.Exit(2) from None
    if str(file) == "-":
        bad = run(sys.stdin.buffer, sys.stdout.buffer, sys.stderr, venue)
    else:
        try:
            handle = file.open("rb")
        except OSError as exc:
            typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        with handle:
            bad = run(handle, sys.stdout.buffer, sys.stderr, venue)
    if bad:
        typer.echo(f"{bad} bad line(s) skipped", err=True)
        raise typer.Exit(1)
