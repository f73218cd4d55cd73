"""The daemon as an OS process: pid file, detaching, stopping and status from any terminal."""

import json
import os
import resource
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PID_FILE = "daemon.pid"
LOG_FILE = "logs/daemon.log"


def raise_file_limit(needed: int) -> int:
    """Raise the soft limit on open files towards `needed` (up to the hard limit) and return it: every
    connection the daemon allows holds one, and running out would refuse the store's files too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def write_pid(home: Path, grpc: str, http: str, tls_cert: Path | None = None) -> None:
    """With TLS on, the certificate's path too: local clients verify the daemon against it."""
    path = home / PID_FILE
    tmp = path.with_suffix(".tmp")
    info: dict[str, Any] = {"pid": os.getpid(), "grpc": grpc, "http": http}
    if tls_cert is not None:
        info["tls_cert"] = str(tls_cert.absolute())
    tmp.write_text(json.dumps(info))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def remove_pid(home: Path) -> None:
    try:
        info = read_pid(home)
        if info is not None and info["pid"] == os.getpid():
            (home / PID_FILE).unlink()
    except FileNotFoundError:
        pass


def read_pid(home: Path) -> dict[str, Any] | None:
    """The running daemon's pid file contents, or None (a stale file from a dead process is ignored)."""
    try:
        info = json.loads((home / PID_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return info if alive(info.get("pid", 0)) else None


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state != "Z"


def health(http: str, timeout: float = 2.0, tls_cert: str | None = None) -> dict[str, Any] | None:
    """GET /health from the daemon (over TLS, verified against `tls_cert`, when given); None when
    it does not answer."""
    scheme, context = ("https", ssl.create_default_context(cafile=tls_cert)) if tls_cert else ("http", None)
    try:
        with urllib.request.urlopen(f"{scheme}://{http}/health", timeout=timeout, context=context) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def grpc_health(address: str, timeout: float = 2.0, tls_cert: str | None = None) -> str:
    """The standard gRPC health check's answer for the whole server ("SERVING", "NOT_SERVING"), or
    why there is none: /health answering says nothing of whether gRPC calls are served."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if tls_cert:
        roots = Path(tls_cert).read_bytes()
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=roots))
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            return f"no answer ({exc.code().name.lower()})"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def detach(home: Path, argv: list[str], wait: float = 30.0) -> dict[str, Any]:
    """Start `tradsys daemon start ARGV` in a new session with output to the log file, and wait
    until it has written its pid file (ports bound) or died."""
    log_path = home / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradsys", "daemon", "start", *argv], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "TRADSYS_HOME": str(home)},
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        info = read_pid(home)
        if info is not None and info["pid"] == proc.pid:
            return info
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(f"the daemon exited with code {proc.returncode}:\n" + "\n".join(tail))
        time.sleep(0.1)
    raise RuntimeError(f"the daemon did not come up within {wait:.0f}s; see {log_path}")


def terminate(pid: int, wait: float = 20.0) -> bool:
    """SIGTERM (graceful: stop accepting, flush, close) and wait; True when the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False
