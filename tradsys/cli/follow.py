"""Following live streams from the CLI through daemon restarts (`tradsys tail`, `alerts tail`)."""

import queue
import threading
from collections.abc import Callable
from typing import Annotated, Any

import grpc
import typer

from tradsys.cli.client import EXIT_UNREACHABLE, Client, CliError
from tradsys.cli.output import err_console

ReconnectOption = Annotated[bool, typer.Option(
    "--reconnect/--no-reconnect",
    help="When the daemon stops or the connection breaks, wait for it and go on (events in between "
         "are missed); --no-reconnect ends with exit 3 instead.")]

RETRY_SECONDS = (0.25, 2.0)
"""First and longest wait between attempts to reach the daemon again."""


def _pump(open_stream: Callable[[], Any], kind: str, out: "queue.Queue[tuple[str, Any]]", client: Client,
          stop: threading.Event, open_streams: set[Any], reconnect: bool) -> None:
    """Put the stream's items on `out`; when the daemon goes away (it stopped, or the connection
    broke), report it and, with `reconnect`, open the stream again once the daemon is back."""
    while not stop.is_set():
        stream = open_stream()
        open_streams.add(stream)
        try:
            for item in stream:
                out.put((kind, item))
            lost: grpc.RpcError | None = None
        except grpc.RpcError as exc:
            if stop.is_set():
                return
            if exc.code() != grpc.StatusCode.UNAVAILABLE or not reconnect:
                out.put(("error", exc))
                return
            lost = exc
        finally:
            open_streams.discard(stream)
        if not reconnect:
            out.put(("end", None))
            return
        out.put(("lost", lost))
        delay = RETRY_SECONDS[0]
        while not stop.is_set():
            try:
                grpc.channel_ready_future(client.channel).result(timeout=delay)
                break
            except grpc.FutureTimeoutError:
                delay = min(delay * 2, RETRY_SECONDS[1])
        out.put(("back", None))


def follow(client: Client, streams: list[tuple[Callable[[], Any], str]], emit: Callable[[str, Any], None],
           reconnect: bool) -> None:
    """Hand every item of every stream to `emit(kind, item)` until Ctrl-C (then return: that is how
    a tail ends, exit 0); with `reconnect`, through the daemon's restarts, saying so on stderr."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    open_streams: set[Any] = set()
    for open_stream, kind in streams:
        threading.Thread(target=_pump, args=(open_stream, kind, events, client, stop, open_streams, reconnect),
                         daemon=True).start()
    live, away = len(streams), 0
    try:
        while live:
            try:
                kind, item = events.get(timeout=0.25)
            except queue.Empty:
                continue
            if kind == "error":
                raise client.error(item)
            if kind == "end":
                live -= 1
            elif kind == "lost":
                away += 1
                if away == 1:
                    why = "closed the stream" if item is None else "stopped, or the connection to it broke"
                    err_console.print(f"the daemon on {client.host}:{client.port} {why}; reconnecting "
                                      f"(events until then are missed)", soft_wrap=True)
            elif kind == "back":
                away -= 1
                if away == 0:
                    err_console.print(f"reconnected to {client.host}:{client.port}", soft_wrap=True)
            else:
                emit(kind, item)
    except KeyboardInterrupt:
        return
    finally:
        stop.set()
        for stream in list(open_streams):
            stream.cancel()
    raise CliError(EXIT_UNREACHABLE, f"the daemon on {client.host}:{client.port} closed the stream")
