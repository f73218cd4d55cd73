"""`tradsys signals listen|send`: trading signals peer to peer, over WebRTC, signaled by the daemon.

aiortc loads only here (tradsys.p2p is imported inside the commands), so other commands stay fast.
The daemon is found as for every command (HOME/daemon.pid, --token or HOME/admin.token); its HTTP
port, where /peerjs is, from the pid file unless --http says otherwise.
"""

import asyncio
import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradsys.cli.client import EXIT_AUTH, EXIT_UNREACHABLE, EXIT_USAGE, CliError, _local, _pid_info, target
from tradsys.cli.output import JsonOption, coloured, console, emit_line, err_console, handle_errors, side_style
from tradsys.signals import InvalidSignal, Signal, admit

if TYPE_CHECKING:
    from tradsys.p2p import DataConnection, Peer

signals_app = typer.Typer(help="Trading signals, peer to peer (WebRTC, PeerJS-compatible).", no_args_is_help=True)

HttpOption = typer.Option("--http", help="Daemon HTTP address HOST:PORT (default: from HOME/daemon.pid, else 127.0.0.1:8080).")
SecretOption = typer.Option("--secret", envvar="TRADSYS_SIGNAL_SECRET", show_envvar=True,
                            help="Shared secret: sign what is sent; ignore what is not signed with it.")
IdOption = typer.Option("--id", help="Our peer id (default: one the daemon gives).")
IceOption = typer.Option("--ice-address", help="Offer ICE candidates on this local address only (repeatable; "
                         "127.0.0.1 keeps WebRTC on this host).")


def _http() -> str:
    info = _pid_info(target.resolved_home())
    host, _, port = str(info.get("http") or "").rpartition(":")
    return f"{_local(host)}:{port}" if port else "127.0.0.1:8080"


def _peer(http: str | None, peer_id: str | None, ice: list[str] | None) -> "Peer":
    from tradsys.p2p import Peer, signaling_url, use_addresses

    token = target.bearer()
    if token is None:
        raise CliError(EXIT_AUTH, "no token: pass --token or TRADSYS_TOKEN (the daemon wants one as the PeerJS key)")
    if ice:
        use_addresses(ice)
    return Peer(signaling_url(http or _http()), token, peer_id)


async def _start(peer: "Peer") -> str:
    from tradsys.p2p import SignalingError

    try:
        return await peer.start()
    except SignalingError as exc:
        code = EXIT_AUTH if "Invalid key" in exc.message else EXIT_USAGE
        raise CliError(code, f"the daemon refused the peer: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise CliError(EXIT_UNREACHABLE, f"cannot reach the daemon's signaling at {peer.url}: {exc}") from None


def _secret(secret: str | None) -> bytes | None:
    return secret.encode() if secret else None


@signals_app.command("listen")
@handle_errors
def listen(
    peer_id: Annotated[str | None, IdOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
    secret: Annotated[str | None, SecretOption] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=0, help="Exit after this many signals (0: never).")] = 0,
    senders: Annotated[list[str] | None, typer.Option(
        "--from", help="Only from peers whose token has this subject, as the daemon vouches (repeatable).")] = None,
    http: Annotated[str | None, HttpOption] = None,
    ice: Annotated[list[str] | None, IceOption] = None,
) -> None:
    """Join as a peer and print the signals others send us, until Ctrl-C (JSON lines with --json).

    Each signal shows its sender's token subject (`subject`), as the daemon vouches for it.
    Example: tradsys signals listen --id desk-1 --json > signals.jsonl   (a recording a backtest can replay)
    """
    asyncio.run(_listen(_peer(http, peer_id, ice), as_json, _secret(secret), count, senders or None))


async def _listen(peer: "Peer", as_json: bool, secret: bytes | None, count: int, senders: list[str] | None) -> None:
    peer_id = await _start(peer)
    err_console.print(f"listening as {peer_id}")
    received = asyncio.Queue[tuple["DataConnection", Any]](1000)
    readers: set[asyncio.Task[None]] = set()

    async def read(conn: "DataConnection") -> None:
        from tradsys.p2p import ConnectionClosed

        try:
            while True:
                await received.put((conn, await conn.recv()))
        except ConnectionClosed:
            return

    async def accept() -> None:
        while True:
            task = asyncio.create_task(read(await peer.accept()))
            readers.add(task)
            task.add_done_callback(readers.discard)

    acceptor = asyncio.create_task(accept())
    try:
        shown = 0
        while count == 0 or shown < count:
            conn, doc = await received.get()
            try:
                signal = admit(doc, conn.peer, conn.subject, secret, senders)
            except InvalidSignal as exc:
                err_console.print(f"ignored from {conn.peer}: {exc}")
                continue
            _show(signal, as_json)
            shown += 1
    finally:
        acceptor.cancel()
        await peer.close()


def _show(signal: Signal, as_json: bool) -> None:
    doc = signal.to_doc()
    if as_json:
        emit_line(doc)
        return
    stamp = datetime.fromtimestamp(signal.time / 1000, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    what = coloured(signal.side, side_style(signal.side)) if signal.side else f"value {signal.value}"
    extra = " ".join(f"{k}={json.dumps(v)}" for k, v in signal.extra.items())
    who = f"{signal.sender} ({signal.subject})" if signal.subject else signal.sender
    console.print(" ".join(p for p in [stamp, who, signal.symbol, what, extra,
                                       "(signed)" if signal.signature else ""] if p))
    sys.stdout.flush()


@signals_app.command("send")
@handle_errors
def send(
    to: Annotated[str, typer.Option("--to", help="The receiving peer's id.")],
    body: Annotated[str, typer.Argument(help='The signal: JSON with symbol and side or value, e.g. '
                                             '\'{"symbol":"BTC-USD","side":"buy","strength":0.7}\'.')],
    peer_id: Annotated[str | None, IdOption] = None,
    secret: Annotated[str | None, SecretOption] = None,
    serialization: Annotated[str, typer.Option("--serialization", help="binary (PeerJS's default) or json.")] = "binary",
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to reach the peer.")] = 15.0,
    as_json: Annotated[bool, JsonOption] = False,
    http: Annotated[str | None, HttpOption] = None,
    ice: Annotated[list[str] | None, IceOption] = None,
) -> None:
    """Send one signal to a listening peer and wait until it has it.

    Example: tradsys signals send --to desk-1 '{"symbol":"BTC-USD","side":"buy","strength":0.7}'
    """
    if serialization not in ("binary", "json"):
        raise CliError(EXIT_USAGE, f"--serialization is binary or json, not {serialization!r}")
    try:
        signal = Signal.parse(json.loads(body))
    except (ValueError, InvalidSignal) as exc:
        raise CliError(EXIT_USAGE, f"not a signal: {exc}") from None
    sent = asyncio.run(_send(_peer(http, peer_id, ice), to, signal, _secret(secret), serialization, timeout))
    if as_json:
        emit_line(sent.to_doc())
    else:
        err_console.print(f"sent to {to} as {sent.sender}")


async def _send(peer: "Peer", to: str, signal: Signal, secret: bytes | None, serialization: str,
                timeout: float) -> Signal:
    from tradsys.p2p import ConnectionClosed, PeerUnavailable

    sender = await _start(peer)
    try:
        try:
            conn = await peer.connect(to, serialization=serialization, reliable=True, timeout=timeout)
        except PeerUnavailable:
            raise CliError(EXIT_UNREACHABLE, f"peer {to} is not there (the daemon expired our offer)") from None
        except ConnectionClosed as exc:
            raise CliError(EXIT_UNREACHABLE, f"cannot connect to peer {to}: {exc}") from None
        stamped = signal.stamped(sender, secret)
        conn.send(stamped.to_doc())
        await conn.finish()
        return stamped
    finally:
        await peer.close()
