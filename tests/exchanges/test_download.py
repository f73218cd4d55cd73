"""`tradsys data download` with the real ccxt against the fake Binance: pages, resume, errors."""

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import free_port
from tests.exchanges.conftest import LISTED_MS
from tests.exchanges.fake_binance import MINUTE_MS, FakeBinance, kline_price
from tradsys.cli.app import app
from tradsys.data import load_market_data

runner = CliRunner()


def download(fake: FakeBinance, *args: str, api_url: str | None = None) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["data", "download", "binance", *args, "--api-url", api_url or fake.api_url,
                                 "--retries", "0", "--json"])
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, doc, result.stderr


def klines_starts(fake: FakeBinance) -> list[int]:
    return [int(query["startTime"]) for path, query in fake.requests if path == "/api/v3/klines"]


def assert_every_bar(path: Path, first_ms: int, count: int) -> None:
    data = load_market_data(path).collect()
    expected = [first_ms + i * MINUTE_MS for i in range(count)]
    assert [ts // 1_000_000 for ts in data["ts"].to_list()] == expected
    assert data["close"].to_list() == [kline_price(ms) for ms in expected]
    assert set(data["symbol"]) == {"BTC-USDT"}


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_download_pages_then_resumes_without_a_duplicate_or_a_hole(fake: FakeBinance, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"btc.{suffix}"
    code, doc, _ = download(fake, "BTC/USDT", "--since", "2024-01-01", "--until", "2024-01-02T06:00Z", "--out", str(out))
    assert code == 0 and doc["complete"] and doc["rows"] == 1800 and doc["pages"] == 2
    assert klines_starts(fake) == [LISTED_MS, LISTED_MS + 1000 * MINUTE_MS]
    assert_every_bar(out, LISTED_MS, 1800)

    fake.requests.clear()
    code, doc, _ = download(fake, "BTC-USDT", "--since", "2024-01-01", "--until", "2024-01-03T12:00Z", "--out", str(out))
    assert code == 0 and doc["rows_before"] == 1800 and doc["rows_added"] == 3600 - 1800
    assert klines_starts(fake)[0] == LISTED_MS + 1800 * MINUTE_MS  # starts at the bar after the file's last
    assert_every_bar(out, LISTED_MS, 3600)

    fake.requests.clear()
    code, doc, _ = download(fake, "BTC-USDT", "--since", "2024-01-01", "--until", "2024-01-03T12:00Z", "--out", str(out))
    assert code == 0 and doc["rows_added"] == 0 and klines_starts(fake) == []


def test_network_failure_keeps_the_partial_file_and_says_where_it_stopped(fake: FakeBinance, tmp_path: Path) -> None:
    out = tmp_path / "btc.parquet"
    fake.fail_klines_after(2)
    code, doc, err = download(fake, "BTC/USDT", "--since", "2024-01-01", "--until", "2024-01-04", "--out", str(out))
    assert code == 6 and not doc["complete"] and doc["error_kind"] == "unreachable"
    assert doc["rows"] == 2000 and doc["stopped_at"] == "2024-01-02T09:20:00.000Z"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "stopped at 2024-01-02T09:20:00.000Z" in lines[0] and "resume" in lines[0]
    assert_every_bar(out, LISTED_MS, 2000)

    fake.fail_klines_after(None)
    code, doc, _ = download(fake, "BTC/USDT", "--since", "2024-01-01", "--until", "2024-01-04", "--out", str(out))
    assert code == 0 and doc["complete"] and doc["rows_added"] == 4320 - 2000
    assert_every_bar(out, LISTED_MS, 4320)


@pytest.mark.parametrize(("args", "code", "says"), [
    (["DOGE/USDT"], 5, "binance has no market DOGE/USDT"),
    (["BTC/USDT", "--timeframe", "7m"], 5, "binance has no timeframe '7m'"),
    (["BTC/USDT", "--since", "yesterday"], 2, "is not a time"),
])
def test_refusals_are_one_line_and_their_own_exit_code(fake: FakeBinance, tmp_path: Path, args: list[str], code: int,
                                                        says: str) -> None:
    since = [] if "--since" in args else ["--since", "2024-01-01"]
    got, _, err = download(fake, *args, *since, "--out", str(tmp_path / "x.parquet"))
    assert got == code
    assert len(err.strip().splitlines()) == 1 and says in err
    assert not (tmp_path / "x.parquet").exists()


def test_an_unreachable_exchange_is_exit_6(fake: FakeBinance, tmp_path: Path) -> None:
    code, _, err = download(fake, "BTC/USDT", "--since", "2024-01-01", "--out", str(tmp_path / "x.parquet"),
                            api_url=f"http://127.0.0.1:{free_port()}")
    assert code == 6 and len(err.strip().splitlines()) == 1 and "not reachable" in err


def test_resuming_into_a_file_of_another_symbol_is_refused(fake: FakeBinance, tmp_path: Path) -> None:
    out = tmp_path / "eth.csv"
    assert download(fake, "ETH/USDT", "--since", "2024-01-01", "--until", "2024-01-01T01:00Z", "--out", str(out))[0] == 0
    code, _, err = download(fake, "BTC/USDT", "--since", "2024-01-01", "--out", str(out))
    assert code == 2 and "holds ETH-USDT, not BTC-USDT" in err


def test_trades_resume_at_the_same_millisecond_without_repeating_one(fake: FakeBinance, tmp_path: Path) -> None:
    second = 1000
    tape = [(LISTED_MS + i * second, 100.0 + i, 0.5, i % 2 == 0) for i in range(30)]
    tape += [(LISTED_MS + 29 * second, 200.0, 0.25, False)] * 3  # more trades in the last trade's millisecond
    fake.add_agg_trades("BTCUSDT", tape[:31])
    out = tmp_path / "trades.parquet"
    code, doc, _ = download(fake, "BTC/USDT", "--trades", "--since", "2024-01-01", "--until", "2024-01-01T00:05Z",
                            "--out", str(out))
    assert code == 0 and doc["rows"] == 31 and doc["kind"] == "trades"

    fake.add_agg_trades("BTCUSDT", tape[31:] + [(LISTED_MS + 40 * second, 300.0, 1.0, True)])
    code, doc, _ = download(fake, "BTC/USDT", "--trades", "--since", "2024-01-01", "--until", "2024-01-01T00:05Z",
                            "--out", str(out))
    assert code == 0 and doc["rows_added"] == 3
    data = pl.read_parquet(out)
    assert data["id"].to_list() == [str(i) for i in range(1, 35)]
    assert data["side"].to_list()[:2] == ["sell", "buy"]  # buyer is maker: the seller took
    assert load_market_data(out).kind == "trades"
