"""The README's tour, pasted line by line into a shell against a daemon started as `make run` starts
it: every line exits 0 and shows something. Live views (`watch`, `tail`) run in a terminal until
they have drawn, then get Ctrl-C, as a person would give them."""

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, start_daemon

ROOT = Path(__file__).resolve().parents[2]
LIVE = ("tradsys watch", "tradsys tail")


def tour_lines() -> list[str]:
    """The commands of the tour's second terminal: its second sh block."""
    text = (ROOT / "README.md").read_text()
    tour = text[text.index("## A tour"):]
    blocks = tour.split("```sh\n")[1:3]
    assert blocks[0].split("```")[0].strip() == "make run", "terminal 1 runs the daemon"
    return [line for line in blocks[1].split("```")[0].splitlines() if line.strip()]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon as `make run` starts it (`tradsys daemon start`, foreground, default settings), on free ports."""
    daemon = start_daemon(tmp_path_factory.mktemp("home"))
    daemon.wait_quoted()
    yield daemon
    if daemon.proc.poll() is None:
        daemon.kill(signal.SIGTERM)


def shell_env(home: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADSYS_")}
    return {**env, "TRADSYS_HOME": str(home), "PATH": f"{venv_bin}:{env.get('PATH', '')}", "NO_COLOR": "1"}


def run_live(line: str, env: dict[str, str]) -> tuple[int, bytes]:
    """A live view in a terminal: wait until it has drawn (a few KB or 15 s), then Ctrl-C."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(["bash", "-c", line], cwd=ROOT, env={**env, "COLUMNS": "120", "LINES": "40"},
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(seen) < 4000:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=20)
    finally:
        os.close(master)
    return code, seen


def test_the_readme_tour_works_line_by_line(made: DaemonProcess) -> None:
    env = shell_env(made.home)
    lines = tour_lines()
    assert any(line.startswith("tradsys order place") for line in lines) and len(lines) >= 20
    assert not any("daemon start" in line for line in lines), "terminal 1 already runs the daemon"
    for line in lines:
        command = line.replace("8080", str(made.http_port))  # `make run` serves HTTP on 8080; this daemon elsewhere
        if line.startswith(". "):
            done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, timeout=30)
            assert done.returncode == 0, (line, done.stderr)
            continue
        if line.startswith(LIVE):
            code, seen = run_live(command, env)
            assert code == 0 and seen.strip() and b"Traceback" not in seen, (line, code, seen[-2000:])
            continue
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        assert done.stdout.strip(), (line, done.stderr)
