"""A quiet daemon (no simulated market) for the REST tests, and a keep-alive JSON client for it."""

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DaemonProcess, start_daemon
from tradsys.daemon.auth import issue_token, load_secret


class Rest:
    """One keep-alive connection to the daemon's HTTP port."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        host, port = daemon.http.split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def token(self, role: str = "admin", accounts: tuple[str, ...] = ()) -> str:
        return issue_token(load_secret(self.daemon.home), role, accounts)

    def call(self, verb: str, path: str, body: Any = None, token: str | None = "admin",
             raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.daemon.admin_token() if token == 'admin' else token}"
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        self.connection.request(verb, path, body=payload, headers=headers)
        answer = self.connection.getresponse()
        data = answer.read()
        return answer.status, json.loads(data) if data and "json" in answer.getheader("Content-Type", "") else data


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home = tmp_path_factory.mktemp("resthome")
    (home / "config.toml").write_text("[market]\nsimulate = false\n")
    proc = start_daemon(home)
    yield proc
    if proc.proc.poll() is None:
        proc.kill(15)


@pytest.fixture
def rest(quiet: DaemonProcess) -> Iterator[Rest]:
    client = Rest(quiet)
    yield client
    client.connection.close()
