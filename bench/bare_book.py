"""The floor for `bench/replay.py`: a bare price-time book in plain Python and stdlib `json`.

It reads the same JSONL commands as `tradsys replay --no-risk` (limit and market orders, GTC and
IOC, cancels, on one symbol with BTC-USD's tick and lot; a self-trade cancels the resting order, as
the venue's default does) and writes the same event lines, so the bench can check that both did
the same work before comparing their times. It has none of the venue's other rules (risk, amends,
stops, halts, validation).

    python bench/bare_book.py FILE > events.jsonl
"""

import heapq
import json
import sys
from collections import deque
from decimal import Decimal

TICK, LOT = Decimal("0.01"), Decimal("0.001")
FILL = "filled"


def text(value: Decimal) -> str:
    out = format(value, "f")
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out or "0"


class Book:
    def __init__(self) -> None:
        self.levels: tuple[dict[int, deque], dict[int, deque]] = ({}, {})  # buy, sell: price -> FIFO of [id, lots, account]
        self.heaps: tuple[list[int], list[int]] = ([], [])  # buy prices negated, sell prices
        self.live: dict[str, tuple[int, int, list]] = {}  # id -> (side, price, entry)
        self.seen: set[str] = set()

    def best(self, side: int) -> int | None:
        heap, levels = self.heaps[side], self.levels[side]
        while heap:
            price = -heap[0] if side == 0 else heap[0]
            if levels.get(price):
                return price
            levels.pop(price, None)
            heapq.heappop(heap)
        return None

    def place(self, oid: str, account: str, side: int, price: int | None, lots: int, ioc: bool, symbol: str, out: list) -> None:
        out.append({"event": "accepted", "id": oid})
        self.seen.add(oid)
        other = 1 - side
        while lots:
            best = self.best(other)
            if best is None or (price is not None and (best > price if side == 0 else best < price)):
                break
            queue = self.levels[other][best]
            entry = queue[0]
            if not entry[1]:
                queue.popleft()
                continue
            if entry[2] == account:
                queue.popleft()
                del self.live[entry[0]]
                out.append({"event": "cancelled", "id": entry[0]})
                continue
            qty = min(lots, entry[1])
            lots -= qty
            entry[1] -= qty
            out.append({"event": FILL, "symbol": symbol, "taker": oid, "maker": entry[0],
                        "price": text(best * TICK), "qty": text(qty * LOT)})
            if not entry[1]:
                queue.popleft()
                del self.live[entry[0]]
        if not lots:
            return
        if ioc or price is None:
            out.append({"event": "cancelled", "id": oid})
            return
        entry = [oid, lots, account]
        level = self.levels[side].get(price)
        if level is None:
            level = self.levels[side][price] = deque()
            heapq.heappush(self.heaps[side], -price if side == 0 else price)
        level.append(entry)
        self.live[oid] = (side, price, entry)

    def cancel(self, oid: str, out: list) -> None:
        found = self.live.pop(oid, None)
        if found is None:
            out.append({"event": "rejected", "id": oid, "reason": "order_closed" if oid in self.seen else "unknown_order",
                        "op": "cancel"})
            return
        found[2][1] = 0  # left in its queue, skipped when matching reaches it
        out.append({"event": "cancelled", "id": oid})

    def resting(self, symbol: str) -> list[dict]:
        out = []
        for side, name in ((0, "buy"), (1, "sell")):
            for price in sorted(self.levels[side], reverse=side == 0):
                for oid, lots, _ in self.levels[side][price]:
                    if lots:
                        out.append({"event": "resting", "id": oid, "symbol": symbol, "side": name,
                                    "price": text(price * TICK), "qty": text(lots * LOT)})
        return out


def main(path: str) -> None:
    book, symbol = Book(), "BTC-USD"
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    loads = json.JSONDecoder(parse_float=Decimal).decode
    write = sys.stdout.write
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            cmd = loads(line)
            out: list[dict] = []
            if cmd["op"] == "new":
                price = cmd.get("price")
                symbol = cmd["symbol"]
                book.place(cmd["id"], cmd["account"], 0 if cmd["side"] == "buy" else 1,
                           None if price is None else int(Decimal(price) / TICK), int(Decimal(cmd["qty"]) / LOT),
                           cmd.get("tif") == "IOC", symbol, out)
            else:
                book.cancel(cmd["id"], out)
            for event in out:
                write(dumps(event) + "\n")
    for event in book.resting(symbol):
        write(dumps(event) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
