"""A live strategy acts on a peer's signal and publishes its own, through the daemon's peer (`[p2p]`)."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, eventually, quoted_daemon
from tests.p2p.conftest import peer_key, url
from tradsys.engine import Venue
from tradsys.engine.strategy import Context, StrategyError
from tradsys.p2p import Peer
from tradsys.proto import strategy_pb2 as spb
from tradsys.proto import strategy_pb2_grpc as spb_grpc

EXAMPLE = Path(__file__).parents[2] / "examples" / "strategies" / "signal_follower.py"
CONFIG = '[p2p]\nenabled = true\nid = "tradsys"\nice_addresses = ["127.0.0.1"]\nsenders = ["peer"]\n'


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    yield from quoted_daemon(tmp_path_factory.mktemp("p2plive"), CONFIG, "--seed", "5")


def test_a_strategy_trades_on_a_peer_signal_and_publishes_its_fill(live: DaemonProcess) -> None:
    stub = spb_grpc.StrategyServiceStub(live.channel())
    sid = stub.StartStrategy(spb.StartStrategyRequest(kind=f"{EXAMPLE}:SignalFollower", params={"quantity": "0.01"},
                                                      account="follower", symbols=["BTC-USD"]),
                             metadata=live.metadata(), timeout=10).status.id

    def running() -> bool:
        status = stub.GetStrategyStatus(spb.GetStrategyStatusRequest(id=sid), metadata=live.metadata(), timeout=5).status
        assert status.state != spb.StrategyStatus.STATE_FAILED, status.error
        return status.state == spb.StrategyStatus.STATE_RUNNING

    eventually(running, timeout=20)

    async def scenario() -> dict:
        async with Peer(url(live), peer_key(live), "signal-desk") as desk:
            conn = await desk.connect("tradsys", serialization="json", reliable=True)
            conn.send({"symbol": "BTC-USD", "side": "sell", "strength": 0.2, "sender": "signal-desk"})  # too weak
            conn.send({"symbol": "BTC-USD", "side": "buy", "strength": 0.9, "sender": "signal-desk"})
            return await asyncio.wait_for(conn.recv(), 20)

    published = asyncio.run(scenario())
    assert (published["symbol"], published["side"], published["reason"], published["sender"]) == \
        ("BTC-USD", "buy", "filled", "tradsys")
    assert float(published["qty"]) == 0.01 and published["time"] > 0
    stub.StopStrategy(spb.StopStrategyRequest(id=sid), metadata=live.metadata(), timeout=10)


def test_a_signal_sent_while_the_strategy_is_starting_reaches_it_once_it_runs(live: DaemonProcess) -> None:
    """StartStrategy returns before the engine's next tick launches the strategy: a signal that arrives
    in between waits for it instead of being dropped."""
    stub = spb_grpc.StrategyServiceStub(live.channel())

    async def scenario() -> tuple[str, dict]:
        async with Peer(url(live), peer_key(live), "early-desk") as desk:
            conn = await desk.connect("tradsys", serialization="json", reliable=True)
            sid = stub.StartStrategy(spb.StartStrategyRequest(kind=f"{EXAMPLE}:SignalFollower",
                                                              params={"quantity": "0.02"}, account="early",
                                                              symbols=["BTC-USD"]),
                                     metadata=live.metadata(), timeout=10).status.id
            conn.send({"symbol": "BTC-USD", "side": "sell", "strength": 0.8, "sender": "early-desk"})
            return sid, await asyncio.wait_for(conn.recv(), 30)

    sid, published = asyncio.run(scenario())
    assert (published["side"], published["reason"], float(published["qty"])) == ("sell", "filled", 0.02)
    stub.StopStrategy(spb.StopStrategyRequest(id=sid), metadata=live.metadata(), timeout=10)


def test_publish_signal_needs_a_side_or_a_value_and_keeps_what_it_sent() -> None:
    class Backtest(Context):
        now = 5_000_000

    ctx = Backtest(Venue().instruments, ("BTC-USD",), "t", "a")
    assert ctx.publish_signal(value=0.5, horizon="1h") == {"symbol": "BTC-USD", "value": 0.5, "horizon": "1h", "time": 5}
    with pytest.raises(StrategyError):
        ctx.publish_signal()
    with pytest.raises(StrategyError):
        ctx.publish_signal("hold")
    assert ctx.published == [{"symbol": "BTC-USD", "value": 0.5, "horizon": "1h", "time": 5}]
