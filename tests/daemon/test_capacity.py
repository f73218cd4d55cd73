"""Many streams do not stop the daemon: unary calls keep their latency, the health check answers,
and past the configured limit a new stream is refused with a reason instead of hanging."""

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.capacity import Caller, Holder, with_streams
from tests.conftest import DaemonProcess, eventually, quoted_daemon, start_daemon
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

STREAMS = 1000


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    yield from quoted_daemon(tmp_path_factory.mktemp("capacity"), "[grpc]\nmax_streams = 1010\n", "--seed", "3")


def test_a_thousand_streams_leave_unary_latency_within_twice_idle(busy: DaemonProcess) -> None:
    caller = Caller(busy, 150)
    try:
        r = with_streams(busy, caller, STREAMS, blocks=2)
    finally:
        caller.close()
    assert all(c.opened == STREAMS and c.refused == 0 for c in r.counted), r.counted
    assert all(c.rate > 0 for c in r.counted), "the streams received data while measured"
    # p50s of blocks alternating with idle ones: the same machine at the same moment
    assert r.ratio("place") < 2.0 and r.ratio("book") < 2.0, (r.ratio("place"), r.ratio("book"))


def test_the_health_check_answers_while_streams_hold_the_limit_and_the_next_is_refused(busy: DaemonProcess) -> None:
    holder = Holder(busy, 1010)
    try:
        assert holder.opened == 1010
        with busy.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            market = md_grpc.MarketDataServiceStub(channel)
            stream = market.StreamTrades(md.StreamTradesRequest(symbol="BTC-USD"), metadata=busy.metadata(), timeout=10)
            with pytest.raises(grpc.RpcError) as refused:
                next(stream)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_streams" in refused.value.details()
            book = market.GetBook(md.GetBookRequest(symbol="BTC-USD", depth=1), metadata=busy.metadata(), timeout=5)
            assert book.book.bids, "unary calls are served at the limit"
    finally:
        holder.measure()
        holder.stop()
    with busy.channel() as channel:  # the limit counts open streams: once they have closed, a new one is taken
        market = md_grpc.MarketDataServiceStub(channel)

        def opens() -> bool:
            call = market.StreamBook(md.StreamBookRequest(symbol="BTC-USD", depth=1), metadata=busy.metadata(),
                                     timeout=10)
            try:
                return next(call).HasField("snapshot")
            finally:
                call.cancel()

        eventually(opens, timeout=30)


def test_work_beyond_the_engine_queue_is_refused_with_resource_exhausted(tmp_path: Path) -> None:
    """`[engine] max_queued` bounds what waits for the engine: a stream batch bigger than it is
    refused with a status naming the limit, and the daemon goes on serving."""
    (tmp_path / "config.toml").write_text("[market]\nsimulate = false\n[engine]\nmax_queued = 10\n")
    d = start_daemon(tmp_path)
    try:
        with d.channel() as channel:
            orders = pb_grpc.OrderServiceStub(channel)
            place = pb.PlaceOrderRequest(account="q", symbol="BTC-USD", side=common.SIDE_BUY,
                                         type=common.ORDER_TYPE_LIMIT, price="100", qty="0.001")
            batch = pb.OrderBatch(seq=1, requests=[pb.OrderRequest(place=place)] * 20)
            with pytest.raises(grpc.RpcError) as refused:
                list(orders.OrderEntry(iter([batch]), metadata=d.metadata(), timeout=10))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "its limit is 10" in refused.value.details()
            small = pb.OrderBatch(seq=2, requests=[pb.OrderRequest(place=place)] * 5)
            (ack,) = list(orders.OrderEntry(iter([small]), metadata=d.metadata(), timeout=10))
            assert [r.status for r in ack.results] == [common.ORDER_STATUS_NEW] * 5
    finally:
        d.kill(15)
