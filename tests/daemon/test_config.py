"""Configuration: precedence, typo protection, typed conversion and the errors people will see."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import free_port
from tradsys.daemon.config import Config, ConfigError, load_config, redacted, resolve_home
from tradsys.engine import SelfTradePrevention


def write(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    config = load_config(env={"TRADSYS_HOME": str(tmp_path)})
    assert config.home == tmp_path
    assert (config.grpc_host, config.grpc_port, config.http_host, config.http_port) == ("127.0.0.1", 50051, "127.0.0.1", 8080)
    assert config.db_path == tmp_path / "tradsys.db"
    assert config.secret_path == tmp_path / "secret.key"
    assert config.simulate is True
    assert config.initial_balance == Decimal("1000000") and config.currency == "USD"
    assert (config.maker_fee_bps, config.taker_fee_bps) == (Decimal("1"), Decimal("5"))
    assert config.stp is SelfTradePrevention.CANCEL_RESTING
    assert config.max_message_bytes == 4 * 1024 * 1024
    assert config.raw == {}


def test_home_resolution_order(tmp_path: Path) -> None:
    assert resolve_home(tmp_path / "flag", {"TRADSYS_HOME": str(tmp_path / "env")}) == tmp_path / "flag"
    assert resolve_home(None, {"TRADSYS_HOME": str(tmp_path / "env")}) == tmp_path / "env"
    assert resolve_home(None, {}) == Path.home() / ".tradsys"


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    write(tmp_path, '[grpc]\nport = 50052\nhost = "0.0.0.0"\n[http]\nport = 8081\n[log]\nformat = "json"\n')
    env = {"TRADSYS_HOME": str(tmp_path), "TRADSYS_HTTP_PORT": "8082", "TRADSYS_LOG_FORMAT": "text"}
    config = load_config(env=env, overrides={"log_format": "json", "grpc_port": None})
    assert config.grpc_host == "0.0.0.0"  # file
    assert config.grpc_port == 50052  # file; a None override means "flag not given"
    assert config.http_port == 8082  # env beats file
    assert config.log_format == "json"  # override beats env
    assert config.log_level == "info"  # default


def test_every_table_and_top_level_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        db_path = "data/venue.db"
        [market]
        simulate = false
        replay_data = "ticks.csv"
        replay_speed = 10
        seed = 7
        taker_rate = 250
        [accounts]
        initial_balance = "2500.50"
        currency = "EUR"
        [fees]
        maker_bps = "-0.5"
        taker_bps = 3
        [venue]
        stp = "cancel_both"
        [tls]
        cert = "/etc/tradsys/cert.pem"
        key = "/etc/tradsys/key.pem"
        [strategies.momentum]
        window = 20
        """,
    )
    config = load_config(env={"TRADSYS_HOME": str(tmp_path)})
    assert config.db_path == tmp_path / "data/venue.db"
    assert config.simulate is False
    assert config.replay_data == tmp_path / "ticks.csv"  # relative to the file that names it
    assert (config.replay_speed, config.sim_seed, config.sim_taker_rate) == (10.0, 7, 250.0)
    assert (config.initial_balance, config.currency) == (Decimal("2500.50"), "EUR")
    assert (config.maker_fee_bps, config.taker_fee_bps) == (Decimal("-0.5"), Decimal("3"))
    assert config.stp is SelfTradePrevention.CANCEL_BOTH
    assert config.tls_cert == Path("/etc/tradsys/cert.pem")
    assert config.raw["strategies"] == {"momentum": {"window": 20}}
    assert load_config(path, env={}).home == Path.home() / ".tradsys"


def test_env_conversion(tmp_path: Path) -> None:
    env = {
        "TRADSYS_HOME": str(tmp_path),
        "TRADSYS_SIMULATE": "false",
        "TRADSYS_SIM_SEED": "42",
        "TRADSYS_REPLAY_SPEED": "2.5",
        "TRADSYS_SIM_TAKER_RATE": "0",
        "TRADSYS_LOG_LEVEL": "DEBUG",
        "TRADSYS_UNRELATED": "ignored",
    }
    config = load_config(env=env)
    assert (config.simulate, config.sim_seed, config.replay_speed, config.log_level) == (False, 42, 2.5, "debug")
    assert config.sim_taker_rate == 0.0  # no noise takers


def test_env_can_clear_an_optional_setting(tmp_path: Path) -> None:
    write(tmp_path, "[market]\nseed = 7\n")
    assert load_config(env={"TRADSYS_HOME": str(tmp_path), "TRADSYS_SIM_SEED": "none"}).sim_seed is None


def test_home_override_picks_the_config_file(tmp_path: Path) -> None:
    write(tmp_path / "other", "[grpc]\nport = 6000\n")
    config = load_config(env={"TRADSYS_HOME": str(tmp_path)}, overrides={"home": tmp_path / "other"})
    assert (config.home, config.grpc_port) == (tmp_path / "other", 6000)


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("TRADSYS_GRPC_PORT", "fifty", "expected an integer"),
        ("TRADSYS_GRPC_PORT", "70000", "1..65535"),
        ("TRADSYS_HTTP_PORT", "0", "1..65535"),
        ("TRADSYS_SIMULATE", "maybe", "true or false"),
        ("TRADSYS_LOG_FORMAT", "xml", "text, json"),
        ("TRADSYS_LOG_LEVEL", "loud", "debug"),
        ("TRADSYS_TAKER_FEE_BPS", "five", "decimal"),
        ("TRADSYS_INITIAL_BALANCE", "-1", "non-negative"),
        ("TRADSYS_INITIAL_BALANCE", "NaN", "finite"),
        ("TRADSYS_REPLAY_SPEED", "0", "positive"),
        ("TRADSYS_SIM_TAKER_RATE", "-1", "non-negative"),
        ("TRADSYS_SIM_TAKER_RATE", "inf", "non-negative"),
        ("TRADSYS_SIM_TAKER_RATE", "true", "a number"),
        ("TRADSYS_STP", "yolo", "cancel_resting"),
        ("TRADSYS_SNAPSHOT_EVERY", "0", ">= 1"),
    ],
)
def test_bad_env_value_names_the_variable(tmp_path: Path, var: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(env={"TRADSYS_HOME": str(tmp_path), var: value})
    assert f"environment variable {var}" in str(err.value)
    assert expected in str(err.value)


def test_typo_in_known_table_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "[grpc]\nprot = 50052\n")
    with pytest.raises(ConfigError, match=r"unknown key 'prot' in \[grpc\] \(known: host, port"):
        load_config(env={"TRADSYS_HOME": str(tmp_path)})


def test_unknown_top_level_setting_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "grpc_prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'grpc_prot'"):
        load_config(env={"TRADSYS_HOME": str(tmp_path)})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[grpc]\nport = "abc"\n', r"\[grpc\] port: expected an integer"),
        ("[grpc]\nport = true\n", r"\[grpc\] port: expected an integer"),
        ("[fees]\nmaker_bps = 1.5\n", r"\[fees\] maker_bps: expected a decimal string"),
        ("grpc = 5\n", r"grpc must be a table"),
        ('home = "/elsewhere"\n', "home cannot be set"),
        ("[grpc\n", "not valid TOML"),
        ("[http]\nmax_connections = 0\n", r"\[http\] max_connections: expected an integer >= 1"),
        ('[http]\nidle_seconds = "soon"\n', r"\[http\] idle_seconds: 'soon' is not a duration"),
        ("[http]\nidle_seconds = -5\n", r"\[http\] idle_seconds: expected a positive duration"),
    ],
)
def test_bad_file_value_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(env={"TRADSYS_HOME": str(tmp_path)})
    assert str(path) in str(err.value)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={"TRADSYS_HOME": str(tmp_path)})


def test_unknown_override_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'grcp_port'"):
        load_config(env={"TRADSYS_HOME": str(tmp_path)}, overrides={"grcp_port": 1})


def test_bad_override_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--grpc-port: expected an integer in 1..65535"):
        load_config(env={"TRADSYS_HOME": str(tmp_path)}, overrides={"grpc_port": 0})


def test_tls_needs_cert_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="together"):
        load_config(env={"TRADSYS_HOME": str(tmp_path), "TRADSYS_TLS_CERT": "/c.pem"})


def test_grpc_and_http_cannot_share_a_port(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both listen on 127.0.0.1:9000"):
        load_config(env={"TRADSYS_HOME": str(tmp_path), "TRADSYS_GRPC_PORT": "9000", "TRADSYS_HTTP_PORT": "9000"})


def test_redacted_is_plain_data_without_secrets(tmp_path: Path) -> None:
    write(tmp_path, '[alerts.slack]\nwebhook_token = "xoxb-123"\nchannel = "#ops"\n')
    data = redacted(load_config(env={"TRADSYS_HOME": str(tmp_path)}))
    assert data["home"] == str(tmp_path) and data["grpc_port"] == 50051 and data["initial_balance"] == "1000000"
    assert data["raw"]["alerts"]["slack"] == {"webhook_token": "[redacted]", "channel": "#ops"}
    assert "xoxb" not in repr(data)


def test_config_is_constructible_directly(tmp_path: Path) -> None:
    assert Config(home=tmp_path).db_path == tmp_path / "tradsys.db"
    assert Config(home=tmp_path, db_path=Path("/var/db.sqlite")).db_path == Path("/var/db.sqlite")


@pytest.mark.parametrize(("text", "says"), [
    ("[p2p]\nenable = true\n", "unknown key(s) in [p2p]: enable (known: enabled, id, secret, senders, ice_addresses)"),
    ('[p2p]\nenabled = true\nsenders = "desk"\n', "[p2p] senders must be a list of texts, got 'desk'"),
    ("[p2p]\nenabled = true\nsenders = []\n", "[p2p] senders = [] would ignore every signal"),
    ('[p2p]\nenabled = "yes"\n', "[p2p] enabled must be a bool, got 'yes'"),
])
def test_a_bad_p2p_table_stops_the_start_with_one_line(tmp_path: Path, text: str, says: str) -> None:
    """Checked before anything starts, whether the peer is on or not: a misspelt key would otherwise leave
    the daemon's peer silently off."""
    write(tmp_path, text)
    done = subprocess.run([sys.executable, "-m", "tradsys", "daemon", "start", "--grpc-port", str(free_port()),
                           "--http-port", str(free_port()), "--no-simulate"],
                          env={**os.environ, "TRADSYS_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "daemon.pid").exists()
