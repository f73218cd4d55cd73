"""`tradsys signals listen|send` as processes, through a real daemon; and the signal's own rules."""

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Queue

import pytest

from tests.conftest import DaemonProcess
from tests.p2p.conftest import peer_key
from tradsys.signals import InvalidSignal, Signal

SECRET = b"desk-secret"


def _env(daemon: DaemonProcess, subject: str | None = None) -> dict[str, str]:
    """The daemon's home (its admin token, subject "admin"), or a viewer token with `subject`."""
    env = {**os.environ, "TRADSYS_HOME": str(daemon.home)}
    env.pop("TRADSYS_SIGNAL_SECRET", None)
    env.pop("TRADSYS_TOKEN", None)
    if subject is not None:
        env["TRADSYS_TOKEN"] = peer_key(daemon, subject)
    return env


def _cli(daemon: DaemonProcess, *args: str) -> list[str]:
    return [sys.executable, "-m", "tradsys", "signals", *args, "--http", daemon.http, "--ice-address", "127.0.0.1"]


@contextmanager
def _listener(daemon: DaemonProcess, *args: str) -> Iterator[tuple[subprocess.Popen[str], "Queue[str]", "Queue[str]"]]:
    """A `signals listen` process, once it says it listens; its stdout and stderr lines arrive on queues
    (stderr complete once the block ends)."""
    proc = subprocess.Popen(_cli(daemon, "listen", *args), env=_env(daemon), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: Queue[str] = Queue()
    errors: Queue[str] = Queue()
    readers = [threading.Thread(target=lambda s=stream, q=queue: [q.put(line) for line in s], daemon=True)
               for stream, queue in ((proc.stdout, lines), (proc.stderr, errors))]
    for reader in readers:
        reader.start()
    try:
        assert errors.get(timeout=30).startswith("listening as "), "the listener did not start"
        yield proc, lines, errors
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)
        for reader in readers:
            reader.join(10)


def _send(daemon: DaemonProcess, to: str, body: str, *args: str,
          subject: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cli(daemon, "send", "--to", to, body, *args), env=_env(daemon, subject), text=True,
                          capture_output=True, timeout=60)


def test_a_listener_prints_what_senders_send_in_either_serialization(signaling: DaemonProcess) -> None:
    with _listener(signaling, "--id", "desk-cli", "--json", "--count", "2") as (proc, lines, _):
        first = _send(signaling, "desk-cli", '{"symbol":"BTC-USD","side":"buy","strength":0.7}', "--id", "cli-a",
                      "--json")
        assert first.returncode == 0, first.stderr
        second = _send(signaling, "desk-cli", '{"symbol":"ETH-USD","value":-1.5}', "--id", "cli-b",
                       "--serialization", "json")
        assert second.returncode == 0, second.stderr
        got = [json.loads(lines.get(timeout=20)) for _ in range(2)]
        assert proc.wait(20) == 0
    sent = json.loads(first.stdout)
    assert got[0] == {**sent, "subject": "admin"} and sent["sender"] == "cli-a" and sent["strength"] == 0.7 and sent["time"] > 0
    assert (got[1]["symbol"], got[1]["value"], got[1]["sender"]) == ("ETH-USD", -1.5, "cli-b")


def test_with_a_secret_a_listener_ignores_unsigned_and_forged_signals(signaling: DaemonProcess) -> None:
    with _listener(signaling, "--id", "desk-signed", "--json", "--count", "1", "--secret", SECRET.decode()) \
            as (proc, lines, errors):
        assert _send(signaling, "desk-signed", '{"symbol":"BTC-USD","side":"sell"}', "--id", "stranger").returncode == 0
        assert _send(signaling, "desk-signed", '{"symbol":"BTC-USD","side":"sell"}', "--id", "forger",
                     "--secret", "wrong").returncode == 0
        signed = _send(signaling, "desk-signed", '{"symbol":"SOL-USD","side":"buy"}', "--id", "friend",
                       "--secret", SECRET.decode())
        assert signed.returncode == 0, signed.stderr
        doc = json.loads(lines.get(timeout=20))
        assert proc.wait(20) == 0
    assert (doc["symbol"], doc["sender"]) == ("SOL-USD", "friend")
    assert Signal.parse(doc).verified(SECRET)
    said = "".join(errors.queue)
    assert "ignored from stranger: no signature" in said and "ignored from forger: bad signature" in said


def test_with_from_a_listener_takes_signals_only_from_the_token_subjects_it_names(signaling: DaemonProcess) -> None:
    """The subject is the one of the sender's token, as the daemon vouches: one a sender writes itself
    is replaced."""
    with _listener(signaling, "--id", "desk-from", "--json", "--count", "1", "--from", "friend-desk") \
            as (proc, lines, errors):
        forged = '{"symbol":"BTC-USD","side":"sell","subject":"friend-desk"}'
        assert _send(signaling, "desk-from", forged, "--id", "eve-1", subject="eve").returncode == 0
        friendly = _send(signaling, "desk-from", '{"symbol":"ETH-USD","side":"buy"}', "--id", "friend-1",
                         subject="friend-desk")
        assert friendly.returncode == 0, friendly.stderr
        doc = json.loads(lines.get(timeout=20))
        assert proc.wait(20) == 0
    assert (doc["symbol"], doc["sender"], doc["subject"]) == ("ETH-USD", "friend-1", "friend-desk")
    assert "ignored from eve-1: token subject 'eve' is not an allowed sender" in "".join(errors.queue)


def test_send_says_why_it_fails(signaling: DaemonProcess) -> None:
    absent = _send(signaling, "nobody-here", '{"symbol":"BTC-USD","side":"buy"}', "--timeout", "10")
    assert absent.returncode == 3 and "peer nobody-here is not there" in absent.stderr
    bad = _send(signaling, "x", '{"side":"buy"}')
    assert bad.returncode == 2 and "not a signal: a signal needs a symbol" in bad.stderr


@pytest.mark.parametrize(("doc", "error"), [
    ([], "a JSON object"), ({"side": "buy"}, "needs a symbol"), ({"symbol": "X", "side": "hold"}, "buy or sell"),
    ({"symbol": "X"}, "a side or a value"), ({"symbol": "X", "value": True}, "a number"),
    ({"symbol": "X", "side": "buy", "time": "now"}, "epoch milliseconds"),
])
def test_a_signal_needs_symbol_and_side_or_value(doc: object, error: str) -> None:
    with pytest.raises(InvalidSignal, match=error):
        Signal.parse(doc)


def test_a_signature_covers_every_field() -> None:
    signed = Signal.parse({"symbol": "BTC-USD", "side": "buy", "strength": 0.7}).stamped("desk", SECRET)
    assert signed.verified(SECRET) and not signed.verified(b"other")
    assert Signal.parse(signed.to_doc()).verified(SECRET)
    for field, value in (("strength", 0.8), ("sender", "mallory"), ("time", signed.time + 1)):
        assert not Signal.parse({**signed.to_doc(), field: value}).verified(SECRET)
    assert not Signal.parse({"symbol": "X", "value": 1}).verified(SECRET)

