"""`tradsys backtest run|sweep|strategies` end to end, through the Typer app."""

import json
from pathlib import Path

from typer.testing import CliRunner

from tradsys.cli.app import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
BARS = str(EXAMPLES / "btc_bars_1m.csv")
runner = CliRunner()


def test_run_json_and_outputs(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "run", BARS, "--strategy", "sma_cross", "--param", "fast=3",
                                 "--param", "slow=8", "--param", "quantity=0.1", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "max_drawdown_duration_s", "win_rate",
                "profit_factor", "trades", "exposure", "fees"):
        assert key in doc["metrics"]
    assert doc["metrics"]["fills"] > 0 and doc["info"]["mode"] == "vectorised"
    assert (tmp_path / "fills.parquet").exists() and (tmp_path / "report.html").exists()


def test_run_table_and_errors() -> None:
    result = runner.invoke(app, ["backtest", "run", BARS, "-s", "mean_reversion", "--no-progress"])
    assert result.exit_code == 0 and "Sharpe" in result.stdout
    bad = runner.invoke(app, ["backtest", "run", BARS, "-s", "sma_cross", "-p", "fast=ten"])
    assert bad.exit_code == 2 and "fast" in bad.output
    missing = runner.invoke(app, ["backtest", "run", "nope.parquet", "-s", "sma_cross"])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_sweep_ranks_a_grid_json() -> None:
    result = runner.invoke(app, ["backtest", "sweep", BARS, "--strategy", "sma_cross", "--grid", "fast=3,5",
                                 "--grid", "slow=10,20", "--param", "quantity=0.1", "--rank", "total_return", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    runs = doc["results"]
    assert len(runs) == 4
    assert {(r["params"]["fast"], r["params"]["slow"]) for r in runs} == {("3", "10"), ("3", "20"), ("5", "10"), ("5", "20")}
    returns = [r["metrics"]["total_return"] for r in runs]
    assert returns == sorted(returns, reverse=True)


def test_strategies_lists_params() -> None:
    result = runner.invoke(app, ["backtest", "strategies"])
    assert result.exit_code == 0
    assert "market_making" in result.stdout and "refresh_seconds" in result.stdout
