"""Many streams do not stop the daemon: unary calls keep their latency, the health check answers,
and past the configured limit a new stream is refused with a reason instead of hanging."""

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.capacity import Caller, Holder, with_streams
from tests.conftest import DaemonProcess, eventually, quoted_daemon
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc

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
