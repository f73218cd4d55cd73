"""promtool on the real exposition and on the example alert rules (Debian's `prometheus` package)."""

import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, eventually

PROMTOOL = shutil.which("promtool")
EXAMPLES = Path(__file__).parents[2] / "examples" / "prometheus"
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; make test does)")


def test_metrics_pass_promtool_check(daemon: DaemonProcess) -> None:
    def scraped() -> bytes:
        with urllib.request.urlopen(f"http://{daemon.http}/metrics") as resp:
            body = resp.read()
        return body if b"tradsys_fills_total" in body else b""

    body = eventually(scraped, timeout=20)
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"tradsys_engine_queue_depth" in body and b"tradsys_circuit_breaker_open" in body


def test_example_alert_rules_unit_tests_pass() -> None:
    result = subprocess.run([PROMTOOL, "test", "rules", "tradsys-alerts.test.yml"], cwd=EXAMPLES,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_example_config_is_valid() -> None:
    result = subprocess.run([PROMTOOL, "check", "config", "prometheus.yml"], cwd=EXAMPLES, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
