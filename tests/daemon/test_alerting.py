"""Each built-in alert forced on a real daemon: it fires, is listed and streamed, and resolves."""

import signal
import threading
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.proto import alerts_pb2 as al
from tradsys.proto import alerts_pb2_grpc as al_grpc
from tradsys.proto import common_pb2 as common
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc
from tradsys.proto import risk_pb2 as rk
from tradsys.proto import risk_pb2_grpc as rk_grpc
from tradsys.proto import ws_pb2

FIRING, RESOLVED = ws_pb2.Alert.STATE_FIRING, ws_pb2.Alert.STATE_RESOLVED

CONFIG = """
[alerts]
rules = [
  { name = "market_data_stale", threshold = 1, for = "0s" },
  { name = "order_reject_rate_high", threshold = 0.5, for = "0s" },
  { name = "order_latency_p99_high", threshold = 0.000001, for = "0s" },
]
"""


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A daemon with no simulated market and fast alert rules."""
    home = tmp_path_factory.mktemp("home")
    (home / "config.toml").write_text(CONFIG)
    daemon = start_daemon(home, "--no-simulate")
    yield daemon
    daemon.kill(signal.SIGTERM)


def alert_state(daemon: DaemonProcess, rule: str) -> dict[str, int]:
    stub = al_grpc.AlertServiceStub(daemon.channel())
    alerts = stub.ListAlerts(al.ListAlertsRequest(), metadata=daemon.metadata()).alerts
    return {a.alert.id: a.alert.state for a in alerts if a.alert.rule == rule}


def test_kill_switch_alert_fires_streams_and_resolves(quiet: DaemonProcess) -> None:
    risk = rk_grpc.RiskServiceStub(quiet.channel())
    stream = al_grpc.AlertServiceStub(quiet.channel()).StreamAlerts(al.StreamAlertsRequest(), metadata=quiet.metadata())
    seen: list = []

    def read() -> None:
        for update in stream:
            if update.alert.rule == "kill_switch_on":
                seen.append(update.alert.state)
                if update.alert.state == RESOLVED:
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    risk.SetKillSwitch(rk.SetKillSwitchRequest(on=True, reason="drill"), metadata=quiet.metadata())
    eventually(lambda: alert_state(quiet, "kill_switch_on").get("kill_switch_on") == FIRING)
    risk.SetKillSwitch(rk.SetKillSwitchRequest(on=False), metadata=quiet.metadata())
    eventually(lambda: alert_state(quiet, "kill_switch_on").get("kill_switch_on") == RESOLVED)
    reader.join(10)
    stream.cancel()
    assert seen[-2:] == [FIRING, RESOLVED]


def test_circuit_breaker_alert(quiet: DaemonProcess) -> None:
    risk = rk_grpc.RiskServiceStub(quiet.channel())
    orders = pb_grpc.OrderServiceStub(quiet.channel())
    meta = quiet.metadata()
    risk.SetLimits(rk.SetLimitsRequest(limits=[
        rk.RiskLimit(key="breaker_move_pct", value="1", symbol="SOL-USD"),
        rk.RiskLimit(key="breaker_cooldown_s", value="600", symbol="SOL-USD"),
    ]), metadata=meta)

    def trade(price: str) -> None:
        orders.PlaceOrder(pb.PlaceOrderRequest(account="mm", symbol="SOL-USD", side=common.SIDE_SELL, qty="1",
                                               price=price), metadata=meta)
        orders.PlaceOrder(pb.PlaceOrderRequest(account="tk", symbol="SOL-USD", side=common.SIDE_BUY, qty="1",
                                               price=price, tif=common.TIME_IN_FORCE_IOC), metadata=meta)

    trade("100.000")
    trade("103.000")
    alert = "circuit_breaker_open:symbol=SOL-USD"
    eventually(lambda: alert_state(quiet, "circuit_breaker_open").get(alert) == FIRING)
    risk.Resume(rk.ResumeRequest(symbol="SOL-USD"), metadata=meta)
    eventually(lambda: alert_state(quiet, "circuit_breaker_open").get(alert) == RESOLVED)


def test_market_data_stale_alert(quiet: DaemonProcess) -> None:
    orders = pb_grpc.OrderServiceStub(quiet.channel())
    meta = quiet.metadata()
    orders.PlaceOrder(pb.PlaceOrderRequest(account="mm", symbol="ETH-USD", side=common.SIDE_SELL, qty="1",
                                           price="3000.00"), metadata=meta)
    orders.PlaceOrder(pb.PlaceOrderRequest(account="tk", symbol="ETH-USD", side=common.SIDE_BUY, qty="0.5",
                                           price="3000.00"), metadata=meta)
    alert = "market_data_stale:symbol=ETH-USD"
    eventually(lambda: alert_state(quiet, "market_data_stale").get(alert) == FIRING, timeout=15)
    orders.PlaceOrder(pb.PlaceOrderRequest(account="tk", symbol="ETH-USD", side=common.SIDE_BUY, qty="0.5",
                                           price="3000.00"), metadata=meta)
    eventually(lambda: alert_state(quiet, "market_data_stale").get(alert) == RESOLVED, timeout=15)


def test_reject_rate_alert_and_ack(quiet: DaemonProcess) -> None:
    orders = pb_grpc.OrderServiceStub(quiet.channel())
    meta = quiet.metadata()
    import grpc

    for _ in range(25):
        with pytest.raises(grpc.RpcError):
            orders.PlaceOrder(pb.PlaceOrderRequest(account="bad", symbol="BTC-USD", side=common.SIDE_BUY, qty="100",
                                                   price="60000.00"), metadata=meta)
    eventually(lambda: alert_state(quiet, "order_reject_rate_high").get("order_reject_rate_high") == FIRING)
    stub = al_grpc.AlertServiceStub(quiet.channel())
    acked = stub.AckAlert(al.AckAlertRequest(id="order_reject_rate_high"), metadata=meta).alert
    assert acked.acked and acked.alert.state == FIRING
    with pytest.raises(grpc.RpcError) as err:
        stub.AckAlert(al.AckAlertRequest(id="nope"), metadata=meta)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_order_latency_alert_fires_on_slow_acks(quiet: DaemonProcess) -> None:
    """With a threshold of one microsecond every acknowledgement is 'slow': 20 orders are enough."""
    orders = pb_grpc.OrderServiceStub(quiet.channel())
    for i in range(25):
        orders.PlaceOrder(pb.PlaceOrderRequest(account="lat", symbol="BTC-USD", side=common.SIDE_BUY, qty="0.001",
                                               price=f"{50000 + i}.00"), metadata=quiet.metadata())
    eventually(lambda: alert_state(quiet, "order_latency_p99_high").get("order_latency_p99_high") == FIRING)


def test_alerts_channel_on_the_websocket(quiet: DaemonProcess) -> None:
    """The same transitions reach a WebSocket client subscribed to `alerts`."""
    import asyncio
    import json

    from websockets.asyncio.client import connect

    risk = rk_grpc.RiskServiceStub(quiet.channel())

    async def main() -> list[str]:
        states: list[str] = []
        async with connect(f"ws://{quiet.http}/ws?token={quiet.admin_token()}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": ["alerts"]}))
            await asyncio.to_thread(risk.SetKillSwitch, rk.SetKillSwitchRequest(on=True), metadata=quiet.metadata())
            while "resolved" not in states:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
                for item in msg["items"] if msg.get("type") == "batch" else [msg]:
                    if item.get("type") == "alert" and item["data"]["rule"] == "kill_switch_on":
                        states.append(item["data"]["state"])
                        if item["data"]["state"] == "firing":
                            await asyncio.to_thread(risk.SetKillSwitch, rk.SetKillSwitchRequest(on=False),
                                                    metadata=quiet.metadata())
        return states

    assert asyncio.run(asyncio.wait_for(main(), 60)) == ["firing", "resolved"]


def test_strategy_drawdown_alert(tmp_path: Path) -> None:
    """A market maker paying fees and spread dips below its peak equity; with a tiny threshold
    that is a drawdown alert; stopping the strategy resolves it."""
    from tradsys.proto import strategy_pb2 as st
    from tradsys.proto import strategy_pb2_grpc as st_grpc

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[alerts]\nrules = [{ name = "strategy_drawdown", threshold = 0.0000001 }]\n')
    daemon = start_daemon(home, "--seed", "5")
    try:
        meta = daemon.metadata()
        stub = st_grpc.StrategyServiceStub(daemon.channel())
        started = eventually(lambda: stub.StartStrategy(st.StartStrategyRequest(
            kind="market_making", params={"spread_bps": "1", "quantity": "0.01", "refresh_seconds": "0.5s",
                                          "max_position": "1"}), metadata=meta, timeout=5).status)
        alert = f"strategy_drawdown:strategy={started.id}"
        eventually(lambda: alert_state(daemon, "strategy_drawdown").get(alert) == FIRING, timeout=90, interval=0.5)
        import urllib.request

        text = urllib.request.urlopen(f"http://{daemon.http}/metrics").read().decode()
        assert f'tradsys_strategy_pnl{{strategy="{started.id}"}}' in text
        assert f'tradsys_strategy_drawdown_ratio{{strategy="{started.id}"}}' in text
        stub.StopStrategy(st.StopStrategyRequest(id=started.id), metadata=meta)
        eventually(lambda: alert_state(daemon, "strategy_drawdown").get(alert) == RESOLVED, timeout=20)
    finally:
        daemon.kill(signal.SIGTERM)
