"""kill -9 under load: no acknowledged order or fill is lost, none appears twice, none appears unasked.

Several clients place orders at once (a gRPC OrderEntry stream, unary PlaceOrder, a /ws JSON
session) while the daemon is killed with SIGKILL at a random moment, several rounds on one home.
After each restart:

- every order acknowledged before the kill is there, under the id the ack gave, exactly once;
- every order there was sent by a client (its client_id is known), and an order there that was
  never acknowledged is one that was *in flight* at the kill: sent, with no answer received;
- fills appear once each, the fills acknowledged with an order are there, and each order's
  fills add up to its filled quantity;
- the book and the positions the restarted daemon serves equal a fresh venue fed the whole
  journal (`tradsys replay` semantics), independently of the snapshot the daemon recovered from.
"""

import asyncio
import json
import random
import re
import signal
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from tests.conftest import DaemonProcess, eventually, start_daemon
from tradsys.daemon.app import make_venue
from tradsys.daemon.config import load_config
from tradsys.daemon.records import position_records
from tradsys.daemon.store import Store
from tradsys.engine.commands import apply
from tradsys.engine.enums import OrderStatus
from tradsys.proto import common_pb2 as common
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc
from tradsys.proto import orders_pb2 as pb
from tradsys.proto import orders_pb2_grpc as pb_grpc

SYMBOL = "ETH-USD"
ROUNDS = 3
CONFIG = """
[db]
snapshot_every = 500
[ws]
rate = 100000
burst = 100000
flood_close = 100000
max_inflight = 256
"""
"""Snapshots every 500 commands: forked children take them all through the rounds, so kills also
land while one is being written, and restarts recover from them."""


@dataclass
class Ledger:
    """What the clients know: each order's client_id when sent, and its answer when one arrived."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, str] = field(default_factory=dict)
    """client_id -> account, for every order a client put on the wire."""
    acked: dict[str, str] = field(default_factory=dict)
    """client_id -> order id, for orders the daemon acknowledged (accepted, or refused by the venue)."""
    refused: set[str] = field(default_factory=set)
    """client_ids refused without an order id (an edge refusal, or a venue refusal over unary gRPC)."""
    acked_fills: dict[str, str] = field(default_factory=dict)
    """fill id -> order id, for fills that came back in an acknowledgement."""

    def send(self, cids: list[str], account: str) -> None:
        with self.lock:
            for cid in cids:
                self.sent[cid] = account

    def answered(self) -> set[str]:
        with self.lock:
            return set(self.acked) | self.refused


def order(rng: random.Random, account: str, cid: str) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        account=account, symbol=SYMBOL, side=rng.choice((common.SIDE_BUY, common.SIDE_SELL)),
        price=f"{rng.randint(2995, 3005)}.00", qty=f"0.0{rng.randint(1, 5)}", client_id=cid,
    )


def stream_client(d: DaemonProcess, ledger: Ledger, tag: str, stop: threading.Event) -> None:
    """OrderEntry: batches of 100, at most 4 batches unanswered."""
    rng = random.Random(tag)
    window = threading.Semaphore(4)
    stub = pb_grpc.OrderServiceStub(d.channel())

    def batches():  # type: ignore[no-untyped-def]
        seq = 0
        while not stop.is_set():
            window.acquire()
            seq += 1
            account = f"{tag}-{seq % 4}"
            reqs = [order(rng, account, f"{tag}-{seq}-{i}") for i in range(100)]
            ledger.send([r.client_id for r in reqs], account)
            yield pb.OrderBatch(seq=seq, requests=[pb.OrderRequest(place=r) for r in reqs])

    try:
        for ack in stub.OrderEntry(batches(), metadata=d.metadata()):
            with ledger.lock:
                for r in ack.results:
                    if r.order_id:
                        ledger.acked[r.client_id] = r.order_id
            window.release()
    except grpc.RpcError:
        pass


def unary_client(d: DaemonProcess, ledger: Ledger, tag: str, stop: threading.Event) -> None:
    rng = random.Random(tag)
    stub = pb_grpc.OrderServiceStub(d.channel())
    n = 0
    while not stop.is_set():
        n += 1
        account = f"{tag}-{n % 2}"
        req = order(rng, account, f"{tag}-{n}")
        ledger.send([req.client_id], account)
        try:
            reply = stub.PlaceOrder(req, metadata=d.metadata(), timeout=10)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                return  # the daemon is gone: this order is in flight
            with ledger.lock:
                ledger.refused.add(req.client_id)
            continue
        with ledger.lock:
            ledger.acked[req.client_id] = reply.order.order_id
            for f in reply.fills:
                ledger.acked_fills[f.fill_id] = f.order_id


def ws_client(d: DaemonProcess, ledger: Ledger, tag: str, stop: threading.Event) -> None:
    """/ws JSON: up to 32 places in flight, answered by request id."""
    rng = random.Random(tag)

    async def main() -> None:
        async with connect(f"ws://{d.http}/ws?token={d.admin_token()}") as ws:
            inflight: dict[int, str] = {}
            n = 0
            while not stop.is_set():
                while len(inflight) < 32:
                    n += 1
                    account = f"{tag}-{n % 2}"
                    cid = f"{tag}-{n}"
                    ledger.send([cid], account)
                    inflight[n] = cid
                    await ws.send(json.dumps({"type": "place", "id": n, "order": {
                        "account": account, "symbol": SYMBOL, "side": rng.choice(("buy", "sell")),
                        "price": f"{rng.randint(2995, 3005)}.00", "qty": f"0.0{rng.randint(1, 5)}", "client_id": cid}}))
                msg = json.loads(await ws.recv())
                for m in msg["items"] if msg.get("type") == "batch" else [msg]:
                    cid = inflight.pop(m.get("id"), None) if m["type"] in ("result", "error") else None
                    if cid is None:
                        continue
                    with ledger.lock:
                        if m["type"] == "result":
                            ledger.acked[cid] = m["result"]["order"]["id"]
                            for f in m["result"]["fills"]:
                                ledger.acked_fills[f"{f['trade_id']}-{f['liquidity'][0]}"] = f["order_id"]
                        else:
                            ledger.refused.add(cid)

    try:
        asyncio.run(main())
    except (OSError, WebSocketException, asyncio.TimeoutError):
        pass


CLIENTS = [(stream_client, "s1"), (stream_client, "s2"), (unary_client, "u1"), (unary_client, "u2"),
           (ws_client, "w1"), (ws_client, "w2")]


def all_pages(call: Any, request: Any, items: str, d: DaemonProcess) -> list[Any]:
    out: list[Any] = []
    while True:
        reply = call(request, metadata=d.metadata())
        out += getattr(reply, items)
        if not reply.next_page_token:
            return out
        request.page_token = reply.next_page_token


def served_state(d: DaemonProcess, accounts: set[str]) -> tuple[dict[str, pb.Order], list[pb.Fill], Any, Any]:
    stub = pb_grpc.OrderServiceStub(d.channel())
    orders: dict[str, pb.Order] = {}
    fills: list[pb.Fill] = []
    for account in sorted(accounts):
        for o in all_pages(stub.ListOrders, pb.ListOrdersRequest(account=account, page_size=1000), "orders", d):
            assert o.order_id not in orders, f"order {o.order_id} listed twice"
            orders[o.order_id] = o
        fills += all_pages(stub.ListFills, pb.ListFillsRequest(account=account, page_size=1000), "fills", d)
    positions = stub.GetPositions(pb.GetPositionsRequest(), metadata=d.metadata()).positions
    book = md_grpc.MarketDataServiceStub(d.channel()).GetBook(
        md.GetBookRequest(symbol=SYMBOL, depth=500), metadata=d.metadata()).book
    return orders, fills, positions, book


def replayed_venue(home: Path) -> Any:
    """A fresh venue fed every journal row, as `tradsys replay` would: no snapshot involved."""
    config = load_config(env={"TRADSYS_HOME": str(home)})
    venue = make_venue(config)
    with Store(config.db_path) as store:
        for entry in store.journal.entries():
            try:
                apply(venue, entry["command"])
            except Exception:
                pass  # journaled after failing the same way live (see Store.recover)
    return venue


def check(d: DaemonProcess, ledger: Ledger, in_flight: set[str]) -> dict[str, int]:
    accounts = set(ledger.sent.values())
    orders, fills, positions, book = served_state(d, accounts)
    by_cid: dict[str, list[pb.Order]] = defaultdict(list)
    for o in orders.values():
        by_cid[o.client_id].append(o)
    # nothing twice, nothing unasked
    assert all(len(v) == 1 for v in by_cid.values()), [k for k, v in by_cid.items() if len(v) > 1][:5]
    unknown = set(by_cid) - set(ledger.sent)
    assert not unknown, f"orders no client sent: {sorted(unknown)[:5]}"
    # every acknowledged order, under the id its ack gave
    for cid, oid in ledger.acked.items():
        assert cid in by_cid, f"acknowledged order {oid} ({cid}) lost"
        assert by_cid[cid][0].order_id == oid and by_cid[cid][0].account == ledger.sent[cid]
    for cid in ledger.refused:
        assert cid not in by_cid or by_cid[cid][0].status == common.ORDER_STATUS_REJECTED
    unacked = set(by_cid) - set(ledger.acked) - ledger.refused
    assert unacked <= in_flight, f"unacknowledged orders that were not in flight: {sorted(unacked - in_flight)[:5]}"
    # fills exactly once, adding up to each order's filled quantity
    counts = Counter(f.fill_id for f in fills)
    assert all(c == 1 for c in counts.values()), [k for k, c in counts.items() if c > 1][:5]
    for fid, oid in ledger.acked_fills.items():
        assert fid in counts, f"acknowledged fill {fid} of order {oid} lost"
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        filled[f.order_id] += Decimal(f.qty)
    for o in orders.values():
        assert filled[o.order_id] == Decimal(o.filled_qty or "0"), f"order {o.order_id}: fills != filled_qty"
    # the served state is the journal's replay
    venue = replayed_venue(d.home)
    inst = venue.instruments[SYMBOL]
    bids, asks = venue.books[SYMBOL].depth(500)
    as_served = lambda levels: [(Decimal(x.price), Decimal(x.qty), x.order_count) for x in levels]  # noqa: E731
    as_replayed = lambda levels: [(inst.price(p), inst.qty(q), n) for p, q, n in levels]  # noqa: E731
    assert as_served(book.bids) == as_replayed(bids) and as_served(book.asks) == as_replayed(asks)
    key = lambda p: (p["account"], p["symbol"], Decimal(p["qty"]), Decimal(p["realized_pnl"]), Decimal(p["fees"]))  # noqa: E731
    served = sorted(key({"account": p.account, "symbol": p.symbol, "qty": p.qty, "realized_pnl": p.realized_pnl,
                         "fees": p.fees}) for p in positions)
    assert served == sorted(key(p) for p in position_records(venue))
    resting = {o.order_id for o in orders.values()
               if o.status in (common.ORDER_STATUS_NEW, common.ORDER_STATUS_PARTIALLY_FILLED)}
    assert resting == {oid for oid, o in venue.orders.items()
                       if o.account in accounts and o.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)}
    return {"orders": len(orders), "fills": len(fills), "in_flight_present": len(unacked)}


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(CONFIG)
    rng = random.Random(20240608)
    ledger = Ledger()
    d = start_daemon(home, "--no-simulate")
    in_flight: set[str] = set()
    try:
        for round_ in range(ROUNDS):
            stop = threading.Event()
            threads = [threading.Thread(target=fn, args=(d, ledger, f"r{round_}{tag}", stop), daemon=True)
                       for fn, tag in CLIENTS]
            for t in threads:
                t.start()
            eventually(lambda: len(ledger.acked) > 300 * (round_ + 1), timeout=30, interval=0.01)
            stop.wait(rng.uniform(0.2, 1.0))  # a random moment under load
            d.kill(signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join(20)
                assert not t.is_alive(), "a client hung on a dead daemon"
            in_flight |= set(ledger.sent) - ledger.answered()
            d = start_daemon(home, "--no-simulate", grpc_port=d.grpc_port, http_port=d.http_port)
            figures = check(d, ledger, in_flight)
            print(f"round {round_ + 1}: sent {len(ledger.sent)}, acked {len(ledger.acked)}, "
                  f"in flight {len(in_flight)}, {figures}")
        assert len(ledger.acked) >= 1000 * ROUNDS, "not much of a load"
        recoveries = [(int(m[1]), int(m[2])) for m in re.finditer(r"daemon\.recovered seq=(\d+) replayed=(\d+)", d.log.read_text())]
        assert any(replayed < seq for seq, replayed in recoveries[1:]), f"no restart recovered from a snapshot: {recoveries}"
    finally:
        if d.proc.poll() is None:
            d.kill(signal.SIGTERM)
