"""Security defaults: loopback unless told, a warning for a public address without TLS, TLS for
gRPC and WebSocket, private secret files, no secret in logs or metrics."""

import asyncio
import json
import signal
import ssl
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from tests.conftest import start_daemon
from tradsys.cli.app import app
from tradsys.daemon.app import insecure_binds
from tradsys.daemon.config import load_config
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc


@pytest.mark.parametrize(
    ("overrides", "warned"),
    [
        ({}, []),
        ({"grpc_host": "0.0.0.0"}, ["grpc 0.0.0.0"]),
        ({"http_host": "::"}, ["http ::"]),
        ({"http_host": "trading.example.com"}, ["http trading.example.com"]),
        ({"grpc_host": "localhost", "http_host": "::1"}, []),
        ({"grpc_host": "0.0.0.0", "tls_cert": "c.pem", "tls_key": "k.pem"}, []),
    ],
)
def test_public_address_without_tls_is_warned_about(tmp_path: Path, overrides: dict, warned: list[str]) -> None:
    config = load_config(env={}, overrides={"home": tmp_path, **overrides})
    assert insecure_binds(config) == warned


def test_defaults_listen_on_loopback(tmp_path: Path) -> None:
    config = load_config(env={}, overrides={"home": tmp_path})
    assert config.grpc_host == "127.0.0.1" and config.http_host == "127.0.0.1"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_for_grpc_and_websocket(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cert, key = _self_signed(tmp_path)
    (home / "config.toml").write_text(f'[tls]\ncert = "{cert}"\nkey = "{key}"\n')
    d = start_daemon(home, "--no-simulate")
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        secure = pb_grpc.OrderServiceStub(grpc.secure_channel(d.grpc_target, creds))
        assert secure.ListOrders(pb.ListOrdersRequest(), metadata=d.metadata(), timeout=10).orders == []
        with pytest.raises(grpc.RpcError):
            pb_grpc.OrderServiceStub(d.channel()).ListOrders(pb.ListOrdersRequest(), metadata=d.metadata(), timeout=3)

        context = ssl.create_default_context(cafile=str(cert))
        health = json.loads(urllib.request.urlopen(f"https://{d.http}/health", context=context, timeout=10).read())
        assert health["status"] == "ok"

        async def ws() -> None:
            async with connect(f"wss://{d.http}/ws?token={d.admin_token()}", ssl=context) as conn:
                await conn.send(json.dumps({"type": "ping", "id": 1}))
                assert json.loads(await conn.recv())["type"] == "pong"
            with pytest.raises(Exception):
                async with connect(f"ws://{d.http}/ws", open_timeout=3):
                    pass

        asyncio.run(ws())
        assert "daemon.started" in d.log.read_text() and "daemon.insecure_bind" not in d.log.read_text()
        cli_over_tls(home, d.grpc_port, tmp_path)
    finally:
        d.kill(signal.SIGTERM)


def cli_over_tls(home: Path, grpc_port: int, tmp_path: Path) -> None:
    """The local CLI verifies the daemon against the certificate its pid file names; --ca names
    another; a client elsewhere, with no certificate, is told to pass one."""
    runner = CliRunner()
    env = {"TRADSYS_HOME": str(home), "NO_COLOR": "1", "TRADSYS_TOKEN": None, "TRADSYS_CA": None}
    listed = runner.invoke(app, ["order", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout) == {"orders": []}
    status = runner.invoke(app, ["daemon", "status", "--json"], env=env)
    assert json.loads(status.stdout)["health"]["status"] == "ok"
    (tmp_path / "other").mkdir()
    other, _ = _self_signed(tmp_path / "other")
    wrong = runner.invoke(app, ["--ca", str(other), "order", "list"], env=env)
    assert wrong.exit_code == 3 and "no TLS connection" in wrong.stderr
    elsewhere = {**env, "TRADSYS_HOME": str(tmp_path / "elsewhere"), "TRADSYS_TOKEN": (home / "admin.token").read_text()}
    plain = runner.invoke(app, ["--grpc-port", str(grpc_port), "order", "list"], env=elsewhere)
    assert plain.exit_code == 3 and "pass its certificate with --ca" in plain.stderr


def test_no_secret_in_logs_or_metrics(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = start_daemon(home, "--no-simulate", "--log-level", "debug")
    try:
        stub = pb_grpc.OrderServiceStub(d.channel())
        stub.ListOrders(pb.ListOrdersRequest(), metadata=d.metadata())
        with pytest.raises(grpc.RpcError):
            stub.ListOrders(pb.ListOrdersRequest(), metadata=(("authorization", f"Bearer {d.admin_token()}x"),))
        metrics = urllib.request.urlopen(f"http://{d.http}/metrics", timeout=5).read().decode()
    finally:
        d.kill(signal.SIGTERM)
    secret = (home / "secret.key").read_text().strip()
    token = d.admin_token()
    logs = "".join(p.read_text() for p in [*(home / "logs").glob("*"), d.log] if p.is_file())
    for text in (logs, metrics):
        assert secret not in text and token not in text and token.split(".")[2] not in text
    for name in ("secret.key", "admin.token"):
        assert (home / name).stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o777 == 0o700
