"""A daemon for signaling only (no simulated market), expiring unread offers after 1 s, and peers
whose ICE candidates stay on loopback."""

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.conftest import DaemonProcess, start_daemon
from tradsys.daemon.auth import issue_token, load_secret
from tradsys.p2p import signaling_url, use_addresses

CONFIG = "[market]\nsimulate = false\n[peerjs]\nexpire_timeout = 1.0\ncleanup_interval = 0.2\n"


@pytest.fixture(scope="session", autouse=True)
def loopback_ice() -> Iterator[None]:
    use_addresses(["127.0.0.1"])
    yield
    use_addresses(None)


@pytest.fixture(scope="module")
def signaling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    home = tmp_path_factory.mktemp("p2phome")
    (home / "config.toml").write_text(CONFIG)
    proc = start_daemon(home)
    yield proc
    proc.kill(15)


def peer_key(daemon: DaemonProcess, subject: str = "peer") -> str:
    """A viewer token: the PeerJS key the daemon wants."""
    return issue_token(load_secret(daemon.home), "viewer", ttl=timedelta(minutes=10), subject=subject)


def url(daemon: DaemonProcess) -> str:
    return signaling_url(daemon.http)
