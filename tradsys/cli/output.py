"""How commands print: rich tables for people, `--json` for scripts, one-line errors on stderr.

Colour follows rich, which honours NO_COLOR and turns itself off when stdout is not a terminal.
Protobuf messages become plain dicts here: enums as short lower-case names ("buy", "limit",
"partially_filled"), decimals stay strings, `_ns` timestamps stay integers.
"""

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import typer
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from tradsys.cli.client import EXIT_FAILED, EXIT_USAGE, CliError


PIPED_WIDTH = 1000


def _width(stream: Any) -> int | None:
    """The terminal's width (or $COLUMNS); piped output is never cut to 80 columns, so a script or a
    log gets every id whole."""
    return None if stream.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH


console = Console(highlight=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))

JsonOption = typer.Option("--json", help="Print JSON (one document; JSON lines for live streams).")

F = TypeVar("F", bound=Callable[..., Any])


def to_dict(msg: Message) -> dict[str, Any]:
    """A protobuf message as JSON-ready data, every field present (proto3 defaults included)."""
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif field.is_repeated:
            out[field.name] = [_value(field, v) for v in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            out[field.name] = to_dict(value) if msg.HasField(field.name) else None
        else:
            out[field.name] = _value(field, value)
    return out


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_dict(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_name(field, value)
    return value


def enum_name(field: FieldDescriptor, number: int) -> str | None:
    """SIDE_BUY -> "buy", ORDER_STATUS_PARTIALLY_FILLED -> "partially_filled"; UNSPECIFIED -> None."""
    enum = field.enum_type.values_by_number.get(number)
    if enum is None or number == 0:
        return None
    names = [v.name for v in field.enum_type.values]
    prefix = _common_prefix(names)
    return enum.name[len(prefix):].lower()


@functools.cache
def _prefix_cache(names: tuple[str, ...]) -> str:
    first = names[0]
    cut = first.rfind("_UNSPECIFIED")
    if cut > 0:
        return first[: cut + 1]
    prefix = first
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix[: prefix.rfind("_") + 1]


def _common_prefix(names: list[str]) -> str:
    return _prefix_cache(tuple(names))


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, default=str) + "\n")


def emit_line(doc: Any) -> None:
    """One JSON line of a stream, flushed so a pipe sees it at once."""
    sys.stdout.write(json.dumps(doc, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[str] = (),
          optional: Sequence[str] = ()) -> Table:
    """Rows under `columns` (`right` ones right-aligned). On a terminal too narrow for all of them
    the `optional` columns are left out, in that order, until the rest fit; whatever still does not
    fit folds onto more lines: a name or an id is never cut short."""
    aligned = set(right)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    shown = list(columns)
    dropped = list(optional)
    while True:
        keep = [columns.index(name) for name in shown]
        out = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
        for name in shown:
            out.add_column(name, justify="right" if name in aligned else "left", overflow="fold")
        for row in cells:
            out.add_row(*(row[i] for i in keep))
        if not dropped or console.width >= PIPED_WIDTH or fits(out):
            return out
        shown.remove(dropped.pop(0))


def fits(out: Table) -> bool:
    """Whether the table's natural width (each cell on one line) fits the terminal."""
    return console.measure(out, options=console.options.update_width(1 << 20)).maximum <= console.width


def fail(code: int, message: str) -> typer.Exit:
    """Print `message` as one line on stderr and return the Exit to raise."""
    err_console.print(message, markup=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn CliError into its one line and exit code (and, under --json, a JSON document on stdout
    too, so a script reading stdout sees why); Ctrl-C ends quietly (130)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CliError as exc:
            if kwargs.get("as_json"):
                emit_json(error_doc(exc))
            raise fail(exc.code, exc.message) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def error_doc(exc: CliError) -> dict[str, Any]:
    """A failure as `--json` prints it: {"error": {"exit_code", "reason", "message"}}."""
    return {"error": {"exit_code": exc.code, "reason": exc.reason or None, "message": exc.message}}


def rounded(value: str | None, step: str | None) -> str:
    """A decimal string rounded to the precision of `step` ("0.01": cents, a tick size), as a table
    shows it; `--json` keeps the full value. Left as it is when either is not a number."""
    try:
        exponent = Decimal(step or "").normalize().as_tuple().exponent
        number = Decimal(value or "")
    except InvalidOperation:
        return value or ""
    if not number.is_finite() or not isinstance(exponent, int):
        return value or ""
    return str(number.quantize(Decimal(1).scaleb(min(exponent, 0))))


def decimal_text(value: str | None, name: str, positive: bool = True) -> str:
    """Validate a decimal string option before it reaches the daemon (exit 2 when malformed)."""
    if value is None:
        return ""
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CliError(EXIT_USAGE, f"usage: {name} must be a decimal number such as 1.5, got {value!r}") from None
    if not number.is_finite() or (positive and number <= 0):
        raise CliError(EXIT_USAGE, f"usage: {name} must be a positive decimal number, got {value!r}")
    return value.strip()


def when(ns: int) -> str:
    """Nanoseconds since the epoch as local wall time (HH:MM:SS.mmm today, else the date too)."""
    if not ns:
        return ""
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).astimezone()
    if moment.date() == datetime.now().astimezone().date():
        return moment.strftime("%H:%M:%S.%f")[:-3]
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def side_style(side: str | None) -> str:
    return {"buy": "green", "sell": "red"}.get(side or "", "")


def coloured(text: str, style: str) -> str:
    return f"[{style}]{text}[/]" if style and text else text


def pnl(value: str) -> str:
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError):
        return value or ""
    return coloured(value, "green" if number > 0 else "red" if number < 0 else "")


__all__ = [
    "EXIT_FAILED", "JsonOption", "console", "emit_json", "emit_line", "fail", "handle_errors", "table", "to_dict",
]
