"""Shared fixtures: a real daemon process on free loopback ports in a temporary TRADSYS_HOME."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test stale code: an editable install runs the engine's compiled extensions, which
    keep the old code after their source changed until the project is reinstalled."""
    engine = Path(__file__).resolve().parents[1] / "tradsys" / "engine"
    stale = [
        source.name for ext in engine.glob("*.so")
        if (source := ext.with_name(ext.name.split(".")[0] + ".py")).exists()
        and source.stat().st_mtime > ext.stat().st_mtime
    ]
    if stale:
        raise pytest.UsageError(f"the compiled engine is older than {', '.join(stale)}: run `make test` "
                                "(or `pip install -e .`) to rebuild it, or delete tradsys/engine/*.so")


def dumped(log: str) -> str:
    """The thread stacks a SIGUSR1 wrote into a daemon's log, once complete: the signalled (main) thread
    comes last, and its outermost frame is `python -m`'s `_run_code`; "" until then."""
    start = log.find("(most recent call first)")
    current = log.find("Current thread", start)
    return log[start:] if start >= 0 and current >= 0 and "in _run_code" in log[current:] else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def eventually(check, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll `check` until it returns a truthy value (returned) or raise with the last failure."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (AssertionError, grpc.RpcError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {last!r}")


@dataclass
class DaemonProcess:
    home: Path
    grpc_port: int
    http_port: int
    proc: subprocess.Popen
    log: Path

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def admin_token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.grpc_target)

    def metadata(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token or self.admin_token()}"),)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the daemon and wait for it to exit; one that has not after 20 s has its threads' stacks
        dumped into its log (SIGUSR1), is killed, and fails the test with the log's end."""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                eventually(lambda: dumped(self.log.read_text(errors="replace")), timeout=5)
            finally:
                self.proc.kill()
                self.proc.wait(20)
            raise AssertionError(f"the daemon did not exit within 20 s of signal {sig}; its log ends:\n"
                                 f"{self.log.read_text(errors='replace')[-6000:]}") from None

    def wait_quoted(self, symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD"), timeout: float = 30) -> None:
        """Wait until the simulated market quotes both sides of each symbol: it starts some ticks
        after the daemon does, and a test that reads the book before then sees it empty or one-sided."""
        from tradsys.proto import marketdata_pb2 as md
        from tradsys.proto import marketdata_pb2_grpc as md_grpc

        with self.channel() as channel:
            stub = md_grpc.MarketDataServiceStub(channel)

            def quoted() -> bool:
                books = [stub.GetBook(md.GetBookRequest(symbol=s, depth=1), metadata=self.metadata(), timeout=5).book
                         for s in symbols]
                return all(book.bids and book.asks for book in books)

            eventually(quoted, timeout=timeout)


def start_daemon(home: Path, *args: str, grpc_port: int | None = None, http_port: int | None = None) -> DaemonProcess:
    grpc_port = grpc_port or free_port()
    http_port = http_port or free_port()
    log = home / "test-daemon.log"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TRADSYS_HOME": str(home)}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradsys", "daemon", "start", "--grpc-port", str(grpc_port),
             "--http-port", str(http_port), *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    daemon = DaemonProcess(home, grpc_port, http_port, proc, log)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return json.loads((home / "daemon.pid").read_text())["pid"] == proc.pid
        except (FileNotFoundError, ValueError):
            return False

    try:
        eventually(up, timeout=30)
    except AssertionError:
        proc.kill()
        raise
    return daemon


def quoted_daemon(home: Path, config: str, *args: str) -> Iterator[DaemonProcess]:
    """A module fixture's body: a daemon with `config.toml` = `config`, its simulated market
    quoting, stopped after the module's tests."""
    (home / "config.toml").write_text(config)
    proc = start_daemon(home, *args)
    proc.wait_quoted()
    yield proc
    if proc.proc.poll() is None:
        proc.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon with the simulated market on, shared by the tests of one module."""
    proc = start_daemon(tmp_path_factory.mktemp("home"), "--seed", "11")
    proc.wait_quoted()
    yield proc
    if proc.proc.poll() is None:
        proc.kill(signal.SIGTERM)
