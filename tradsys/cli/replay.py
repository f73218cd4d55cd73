"""`tradsys replay FILE`: run a JSONL command stream through a fresh engine and print its events."""

import json
import sys
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from tradsys.engine import Rejected, Venue, VenueConfig
from tradsys.engine.commands import BadCommand, apply, event_dict, load_limits, resting_dicts


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _read_limits(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text, parse_float=Decimal)
    return tomllib.loads(text)


def run(lines: TextIO, out: TextIO, err: TextIO, venue: Venue) -> int:
    """Replay `lines` into `venue`, writing events to `out`; returns the number of bad lines."""
    bad = 0
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events = apply(venue, json.loads(line, parse_float=Decimal, parse_constant=_no_constants))
        except (ValueError, BadCommand, Rejected) as exc:
            bad += 1
            err.write(f"line {number}: {exc}\n")
            continue
        for event in events:
            out.write(dumps(event_dict(venue, event)) + "\n")
    for resting in resting_dicts(venue):
        out.write(dumps(resting) + "\n")
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
        bad = run(sys.stdin, sys.stdout, sys.stderr, venue)
    else:
        try:
            handle = file.open(encoding="utf-8")
        except OSError as exc:
            typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        with handle:
            bad = run(handle, sys.stdout, sys.stderr, venue)
    if bad:
        typer.echo(f"{bad} bad line(s) skipped", err=True)
        raise typer.Exit(1)
