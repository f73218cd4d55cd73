"""Soak: the daemon with the simulated market, live strategies and clients for a while; memory must stay flat.

    python bench/soak.py                  # 3 minutes
    python bench/soak.py --seconds 1800   # half an hour
    python bench/soak.py --seconds 3600 --mm-every 5 --taker-rate 40   # and: does the market maker keep quoting?

Runs a real daemon in a temporary home (loopback only), starts two built-in strategies, and drives:
order-entry streams (place then cancel, so the book stays bounded), a unary client whose
acknowledgement times give the p99, and WebSocket subscribers to books, trades and order events.
Every `--sample` seconds it prints the daemon's RSS, the event rates, and the venue's refusals and
any errors the clients saw. At the end: refusals by reason, and the memory verdict. Caches and
histories fill during the first half, so the verdict judges the second half only: RSS at its start
and at the end, and the least-squares growth per minute over it (flat = at most
`--max-growth-mb-per-min`).

With `--mm-every N` it also watches the market maker (`market_making` on SOL-USD): every N seconds
whether it has a live bid and ask (ListOrders) on each side its position (GetPositions) allows, and
every refusal it meets (its order events stream). At the end: the share of samples with both
sides, with every allowed side, refusals by reason, requests refused twice on one order, and a
verdict: QUOTING unless an allowed side was unquoted in two samples running, the strategy stopped,
or a refusal repeated. `--taker-rate` makes the simulated market busier (`[market] taker_rate`).
"""

import argparse
import asyncio
import itertools
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter as Tally
from decimal import Decimal
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import DaemonProcess, start_daemon  # noqa: E402
from tradsys.proto import common_pb2 as common  # noqa: E402
from tradsys.proto import marketdata_pb2 as md  # noqa: E402
from tradsys.proto import marketdata_pb2_grpc as md_grpc  # noqa: E402
from tradsys.proto import orders_pb2 as pb  # noqa: E402
from tradsys.proto import orders_pb2_grpc as pb_grpc  # noqa: E402
from tradsys.proto import strategy_pb2 as spb  # noqa: E402
from tradsys.proto import strategy_pb2_grpc as spb_grpc  # noqa: E402

CONFIG = "[ws]\nrate = 100000\nburst = 100000\nflood_close = 100000\n"
REFUSAL_CODES = frozenset((
    common.ERROR_CODE_RISK_REJECTED, common.ERROR_CODE_HALTED, common.ERROR_CODE_KILL_SWITCH,
    common.ERROR_CODE_POST_ONLY_WOULD_CROSS, common.ERROR_CODE_ORDER_CLOSED, common.ERROR_CODE_DUPLICATE,
    common.ERROR_CODE_RATE_LIMITED,
))
"""Batch results that are the venue's rules refusing a request, not something going wrong."""
AWAY = 0.03
"""Stream limit orders sit this far from the last trade: far enough to rest outside the simulated
market's quotes (or to cross them), well inside the venue's 5 % price band."""


class Counters:
    """What the clients saw. A refusal is the venue saying no for a named reason (expected now and
    then: a cancel racing a fill, a price band); an error is anything else and should not happen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.placed = 0
        self.ws_messages = 0
        self.ws_reconnects = 0
        self.errors = 0
        self.refusals: Tally[str] = Tally()
        self.error_samples: list[str] = []
        self.latencies: list[float] = []

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def refused(self, reason: str) -> None:
        with self.lock:
            self.refusals[reason] += 1

    def error(self, text: str) -> None:
        with self.lock:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(text)

    def result(self, result: pb.OrderResult) -> None:
        """One entry of a batch ack: refusals carry `reason: message`, with a venue reason's code."""
        code = result.error.code
        if not code:
            return
        if code in REFUSAL_CODES:
            self.refused(result.error.message.split(":", 1)[0])
        else:
            self.error(f"{common.ErrorCode.Name(code)}: {result.error.message}")

    def rpc_failed(self, exc: grpc.RpcError) -> None:
        """A unary refusal is a status with the reason in the `tradsys-reason` trailer."""
        reason = dict(exc.trailing_metadata() or ()).get("tradsys-reason")  # type: ignore[attr-defined]
        if reason:
            self.refused(reason)
        else:
            self.error(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Reference:
    """The last trade price of a symbol, refreshed at most once a second: the venue's price band
    is centred on it, so orders priced from it stay inside the band wherever the market wanders."""

    def __init__(self, d: DaemonProcess, symbol: str) -> None:
        self.stub = md_grpc.MarketDataServiceStub(d.channel())
        self.metadata = d.metadata()
        self.symbol = symbol
        self.value: float | None = None
        self.fetched = 0.0

    def price(self) -> float | None:
        if time.monotonic() - self.fetched >= 1.0:
            self.fetched = time.monotonic()
            try:
                trades = self.stub.GetTrades(md.GetTradesRequest(symbol=self.symbol, limit=1),
                                             metadata=self.metadata, timeout=5).trades
            except grpc.RpcError:
                return self.value
            if trades:
                self.value = float(trades[-1].price)
        return self.value


def stream_client(d: DaemonProcess, c: Counters, stop: threading.Event, tag: str, rate: int) -> None:
    """Places 50-order batches at about `rate` orders/s, each with a client id (as real clients do:
    the venue remembers them per account), then cancels what rested. Limit prices are AWAY from the
    last trade either way (half rest, half cross); a broken stream is an error, and the client opens
    a new one."""
    rng = random.Random(tag)
    stub = pb_grpc.OrderServiceStub(d.channel())
    reference = Reference(d, "ETH-USD")
    resting: list[str] = []

    numbers = itertools.count(1)  # across reconnects too: client ids must not repeat

    def batches():  # type: ignore[no-untyped-def]
        while not stop.is_set():
            seq = next(numbers)
            reqs = [pb.OrderRequest(cancel=pb.CancelOrderRequest(order_id=oid)) for oid in resting[:50]]
            del resting[:50]
            ref = reference.price() or 3000.0
            prices = (f"{ref * (1 - AWAY):.2f}", f"{ref * (1 + AWAY):.2f}")
            reqs += [pb.OrderRequest(place=pb.PlaceOrderRequest(
                account=f"{tag}-{i % 4}", symbol="ETH-USD", side=rng.choice((common.SIDE_BUY, common.SIDE_SELL)),
                type=common.ORDER_TYPE_MARKET if i % 10 == 0 else common.ORDER_TYPE_LIMIT,
                price="" if i % 10 == 0 else rng.choice(prices), qty="0.01", client_id=f"{tag}-{seq}-{i}"))
                for i in range(50)]
            yield pb.OrderBatch(seq=seq, requests=reqs)
            time.sleep(50 / rate)

    while not stop.is_set():
        try:
            for ack in stub.OrderEntry(batches(), metadata=d.metadata()):
                for r in ack.results:
                    if r.status == common.ORDER_STATUS_NEW:
                        resting.append(r.order_id)
                    c.result(r)
                c.add(placed=len(ack.results))
        except grpc.RpcError as exc:
            if stop.is_set():
                return
            c.rpc_failed(exc)
            resting.clear()
            time.sleep(1)


def unary_client(d: DaemonProcess, c: Counters, stop: threading.Event) -> None:
    stub = pb_grpc.OrderServiceStub(d.channel())

    def market(side: int) -> pb.PlaceOrderResponse | None:
        try:
            return stub.PlaceOrder(pb.PlaceOrderRequest(account="lat", symbol="BTC-USD", side=side,
                                                        type=common.ORDER_TYPE_MARKET, qty="0.001"),
                                   metadata=d.metadata(), timeout=10)
        except grpc.RpcError as exc:
            c.rpc_failed(exc)
            return None

    while not stop.is_set():
        start = time.perf_counter()
        reply = market(common.SIDE_BUY)
        with c.lock:
            c.latencies.append(time.perf_counter() - start)
        c.add(placed=1)
        if reply is not None and reply.order.order_id:
            market(common.SIDE_SELL)
        time.sleep(0.02)


def ws_client(d: DaemonProcess, c: Counters, stop: threading.Event) -> None:
    """Subscribes and reads; if the daemon closes the connection (a slow consumer), it counts a
    reconnect and subscribes again."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def session() -> None:
        async with connect(f"ws://{d.http}/ws?token={d.admin_token()}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": [
                "book:BTC-USD", "book:ETH-USD", "trades:BTC-USD", "trades:ETH-USD", "orders", "bars:BTC-USD:1s"]}))
            while not stop.is_set():
                msg = json.loads(await ws.recv())
                c.add(ws_messages=len(msg["items"]) if msg.get("type") == "batch" else 1)

    while not stop.is_set():
        try:
            asyncio.run(session())
        except (ConnectionClosed, OSError):
            if not stop.is_set():
                c.add(ws_reconnects=1)
                time.sleep(1)


class QuoteWatch:
    """Does the market maker keep quoting? Samples its open orders against what its position allows,
    and counts the refusals on its order events stream by reason and by (order, reason)."""

    def __init__(self, d: DaemonProcess, status: spb.StrategyStatus) -> None:
        self.d = d
        self.id, self.account, self.symbol = status.id, status.account, status.symbols[0]
        self.size, self.limit = Decimal(status.params["quantity"]), Decimal(status.params["max_position"])
        self.orders = pb_grpc.OrderServiceStub(d.channel())
        self.strategies = spb_grpc.StrategyServiceStub(d.channel())
        self.samples = self.both = self.covered = self.stopped = 0
        self.run = self.worst_run = 0
        """Samples running (and the most) with an allowed side unquoted."""
        self.refusals: Tally[str] = Tally()
        self.per_order: Tally[tuple[str, str]] = Tally()

    def allowed(self, position: Decimal) -> set[str]:
        return {side for side, after in (("buy", position + self.size), ("sell", position - self.size))
                if abs(after) <= self.limit}

    def sample(self) -> None:
        md = self.d.metadata()
        try:
            state = self.strategies.GetStrategyStatus(spb.GetStrategyStatusRequest(id=self.id), metadata=md,
                                                      timeout=5).status.state
            held = [Decimal(p.qty) for p in self.orders.GetPositions(
                pb.GetPositionsRequest(account=self.account), metadata=md, timeout=5).positions if p.symbol == self.symbol]
            listed = self.orders.ListOrders(pb.ListOrdersRequest(
                account=self.account, symbol=self.symbol, statuses=[common.ORDER_STATUS_NEW,
                                                                     common.ORDER_STATUS_PARTIALLY_FILLED]),
                metadata=md, timeout=5).orders
        except grpc.RpcError:
            return
        sides = {"buy" if o.side == common.SIDE_BUY else "sell" for o in listed}
        self.samples += 1
        self.stopped += state != spb.StrategyStatus.STATE_RUNNING
        self.both += sides == {"buy", "sell"}
        if self.allowed(held[0] if held else Decimal(0)) <= sides:
            self.covered += 1
            self.run = 0
        else:
            self.run += 1
            self.worst_run = max(self.worst_run, self.run)

    def watch(self, stop: threading.Event, every: float) -> None:
        while not stop.wait(every):
            self.sample()

    def follow(self, stop: threading.Event) -> None:
        """Its order events: every refusal, by reason and by (order, reason)."""
        stream = self.orders.StreamOrderEvents(pb.StreamOrderEventsRequest(account=self.account),
                                               metadata=self.d.metadata())
        threading.Thread(target=lambda: stop.wait() and stream.cancel(), daemon=True).start()
        try:
            for event in stream:
                if event.kind == pb.OrderEvent.KIND_REJECTED:
                    self.refusals[event.reason] += 1
                    self.per_order[(event.order.order_id, event.reason)] += 1
        except grpc.RpcError:
            if not stop.is_set():
                print("the market maker's order events stream ended", file=sys.stderr)

    def report(self) -> tuple[bool, str]:
        n = max(self.samples, 1)
        repeated = sum(1 for count in self.per_order.values() if count > 1)
        quoting = self.samples > 0 and self.worst_run < 2 and not self.stopped and not repeated
        refusals = ", ".join(f"{reason} {count}" for reason, count in self.refusals.most_common()) or "none"
        return quoting, (f"market maker: {'QUOTING' if quoting else 'SILENT'} - {self.samples} samples: both sides "
                         f"{self.both} ({100 * self.both / n:.1f} %), every side its position allows {self.covered} "
                         f"({100 * self.covered / n:.1f} %), longest run with an allowed side unquoted "
                         f"{self.worst_run}, not running {self.stopped}; refusals: {refusals}; "
                         f"orders refused twice for one reason: {repeated}")


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)] if values else 0.0


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per minute: one noisy sample moves it little."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    return 60 * sum((t - mean_t) * (m - mean_m) for t, m in samples) / var if var else 0.0


def verdict(samples: list[tuple[float, float]], seconds: float, limit: float) -> tuple[bool, str]:
    second_half = [s for s in samples if s[0] >= seconds / 2] or samples[-1:]
    (t0, start), (t1, end) = second_half[0], second_half[-1]
    rate = slope_per_minute(second_half)
    flat = rate <= limit
    return flat, (f"memory: {'FLAT' if flat else 'GROWING'} - second half ({t0:.0f}-{t1:.0f} s): RSS {start:.1f} -> "
                  f"{end:.1f} MB ({end - start:+.1f} MB), {rate:+.2f} MB/min (limit {limit:g}); "
                  f"whole run {samples[0][1]:.1f} -> {end:.1f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--sample", type=float, default=5)
    parser.add_argument("--rate", type=int, default=500, help="orders/s per order-entry stream")
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--ws-clients", type=int, default=4)
    parser.add_argument("--max-growth-mb-per-min", type=float, default=1.0)
    parser.add_argument("--mm-every", type=float, default=0, metavar="N",
                        help="every N seconds, check that the market maker quotes both sides (0: off)")
    parser.add_argument("--taker-rate", type=float, help="simulated noise taker orders per second per symbol")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="tradsys-soak-"))
    market = "" if args.taker_rate is None else f"[market]\ntaker_rate = {args.taker_rate}\n"
    (home / "config.toml").write_text(CONFIG + market)
    d = start_daemon(home, "--seed", "9", "--durability", "process")
    c = Counters()
    stop = threading.Event()
    watch: QuoteWatch | None = None
    try:
        strategies = spb_grpc.StrategyServiceStub(d.channel())
        for kind, symbol in (("market_making", "SOL-USD"), ("sma_cross", "BTC-USD")):
            try:
                started = strategies.StartStrategy(spb.StartStrategyRequest(
                    kind=kind, account=f"strat-{kind}", symbols=[symbol]), metadata=d.metadata())
            except grpc.RpcError as exc:
                print(f"strategy {kind} not started: {exc.details()}")
                continue
            if kind == "market_making" and args.mm_every > 0:
                watch = QuoteWatch(d, started.status)
        threads = [] if watch is None else [threading.Thread(target=watch.follow, args=(stop,), daemon=True),
                                            threading.Thread(target=watch.watch, args=(stop, args.mm_every), daemon=True)]
        threads += [threading.Thread(target=stream_client, args=(d, c, stop, f"s{i}", args.rate), daemon=True)
                   for i in range(args.streams)]
        threads += [threading.Thread(target=unary_client, args=(d, c, stop), daemon=True)]
        threads += [threading.Thread(target=ws_client, args=(d, c, stop), daemon=True) for _ in range(args.ws_clients)]
        for t in threads:
            t.start()
        start = time.monotonic()
        samples: list[tuple[float, float]] = []
        last = (start, 0, 0)
        print(f"{'t (s)':>6} {'RSS MB':>8} {'orders/s':>9} {'ws msg/s':>9} {'p99 ack ms':>10} {'refused':>8} {'errors':>7}")
        while time.monotonic() - start < args.seconds:
            time.sleep(args.sample)
            if d.proc.poll() is not None:
                print("the daemon died", file=sys.stderr)
                return 1
            now = time.monotonic()
            with c.lock:
                placed, msgs, lat, c.latencies = c.placed, c.ws_messages, c.latencies, []
                refused = sum(c.refusals.values())
            rss = rss_mb(d.proc.pid)
            samples.append((now - start, rss))
            dt = now - last[0]
            print(f"{now - start:6.0f} {rss:8.1f} {(placed - last[1]) / dt:9.0f} {(msgs - last[2]) / dt:9.0f} "
                  f"{p99(lat) * 1000:10.2f} {refused:8d} {c.errors:7d}", flush=True)
            last = (now, placed, msgs)
        refusals = ", ".join(f"{reason} {n}" for reason, n in c.refusals.most_common()) or "none"
        print(f"\norders {c.placed}, ws messages {c.ws_messages}, ws reconnects {c.ws_reconnects}")
        print(f"refusals: {refusals}")
        print(f"errors: {c.errors}" + "".join(f"\n  {text}" for text in c.error_samples))
        flat, line = verdict(samples, args.seconds, args.max_growth_mb_per_min)
        print(line)
        quoting = True
        if watch is not None:
            quoting, line = watch.report()
            print(line)
        return 0 if flat and quoting and not c.errors else 1
    finally:
        stop.set()
        if d.proc.poll() is None:
            d.kill(signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
