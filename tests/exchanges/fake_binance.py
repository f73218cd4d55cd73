"""A small fake of Binance spot on 127.0.0.1: enough REST and WebSocket for the real ccxt and ccxt.pro.

REST (`/api/v3/...`): exchangeInfo, klines, aggTrades, depth. WebSocket (`/stream/ws/N`, a path
with `/stream` in it as ccxt's spot check expects): SUBSCRIBE to `SYM@depth@100ms` and
`SYM@trade`, then depthUpdate diffs numbered U..u and trade prints. The test drives the market
(`set_levels`, `print_trade`) and the faults (`drop_connections`, `skip_update`, `fail_klines_after`).
It runs an aiohttp server on its own loop thread; every public method is safe to call from the test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

MINUTE_MS = 60_000


def kline_price(open_ms: int) -> float:
    """A deterministic close for the bar opening at `open_ms`: the same bar is the same on every call."""
    minute = open_ms // MINUTE_MS
    return 100.0 + (minute % 97) * 0.25


@dataclass
class FakeMarket:
    base: str
    quote: str
    tick: str = "0.01"
    lot: str = "0.001"
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.base + self.quote


class FakeBinance:
    """Binance spot, small: markets, 1m klines from `listed_ms` to `now_ms`, a book, a trade tape."""

    def __init__(self, listed_ms: int, now_ms: int, page_limit: int = 1000, port: int = 0) -> None:
        self.listed_ms = listed_ms
        self.now_ms = now_ms
        self.page_limit = page_limit
        self.markets: dict[str, FakeMarket] = {}
        self.update_id = 1000
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._fail_klines_after: int | None = None
        self.hold_snapshots = False
        """While set, depth snapshots answer 503: a feed that lost its book cannot resync."""
        self._sockets: list[tuple[web.WebSocketResponse, set[str]]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = port
        """0 picks a free port; a port of a stopped fake brings "the exchange" back where it was."""
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-binance", daemon=True)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeBinance:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def stop() -> None:
            for ws, _ in list(self._sockets):
                await ws.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/aggTrades", self._agg_trades)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/stream/ws/{n}", self._websocket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _call(self, func: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return await func() if asyncio.iscoroutinefunction(func) else func()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # -- the test's controls --------------------------------------------------------------------

    def add_market(self, base: str, quote: str, tick: str = "0.01", lot: str = "0.001") -> FakeMarket:
        market = FakeMarket(base, quote, tick, lot)
        self.markets[market.id] = market
        return market

    def fail_klines_after(self, pages: int | None) -> None:
        """Cut the connection on every klines request after `pages` answered ones (None: never)."""
        self._fail_klines_after = pages

    def set_levels(self, symbol_id: str, bids: dict[float, float], asks: dict[float, float], skip: bool = False) -> int:
        """Change levels (size 0 removes one) and push one depthUpdate; `skip` leaves a sequence gap."""

        async def push() -> int:
            market = self.markets[symbol_id]
            for side, changes in ((market.bids, bids), (market.asks, asks)):
                for price, qty in changes.items():
                    if qty:
                        side[price] = qty
                    else:
                        side.pop(price, None)
            first = self.update_id + (2 if skip else 1)
            self.update_id = first + 1
            message = {
                "e": "depthUpdate", "E": self.now_ms, "s": symbol_id, "U": first, "u": self.update_id,
                "b": [[_text(p), _text(q)] for p, q in bids.items()],
                "a": [[_text(p), _text(q)] for p, q in asks.items()],
            }
            await self._send(f"{symbol_id.lower()}@depth@100ms", message)
            return self.update_id

        return int(self._call(push))

    def print_trade(self, symbol_id: str, price: float, qty: float, buyer_is_maker: bool) -> None:
        async def push() -> None:
            market = self.markets[symbol_id]
            trade = {"e": "trade", "E": self.now_ms, "s": symbol_id, "t": len(market.trades) + 1,
                     "p": _text(price), "q": _text(qty), "T": self.now_ms, "m": buyer_is_maker, "M": True}
            market.trades.append(trade)
            await self._send(f"{symbol_id.lower()}@trade", trade)

        self._call(push)

    def drop_connections(self) -> None:
        async def drop() -> None:
            for ws, _ in list(self._sockets):
                await ws.close()

        self._call(drop)

    def subscriptions(self) -> set[str]:
        return self._call(lambda: set().union(*(topics for _, topics in self._sockets)))

    def book(self, symbol_id: str) -> tuple[dict[float, float], dict[float, float]]:
        return self._call(lambda: (dict(self.markets[symbol_id].bids), dict(self.markets[symbol_id].asks)))

    def add_agg_trades(self, symbol_id: str, trades: list[tuple[int, float, float, bool]]) -> None:
        """History for aggTrades: (time ms, price, qty, buyer is maker), ids in order of addition."""
        market = self.markets[symbol_id]
        for time_ms, price, qty, maker in trades:
            market.trades.append({"a": len(market.trades) + 1, "p": _text(price), "q": _text(qty),
                                  "f": 1, "l": 1, "T": time_ms, "m": maker, "M": True})

    # -- REST -----------------------------------------------------------------------------------

    def _market(self, request: web.Request) -> FakeMarket | web.Response:
        self.requests.append((request.path, dict(request.query)))
        market = self.markets.get(request.query.get("symbol", ""))
        if market is None:
            return _error(-1121, "Invalid symbol.")
        return market

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now_ms})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        symbols = [{
            "symbol": m.id, "status": "TRADING", "baseAsset": m.base, "baseAssetPrecision": 8,
            "quoteAsset": m.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True, "ocoAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": m.tick, "maxPrice": "1000000.00", "tickSize": m.tick},
                {"filterType": "LOT_SIZE", "minQty": m.lot, "maxQty": "9000.0", "stepSize": m.lot},
            ],
        } for m in self.markets.values()]
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms, "rateLimits": [],
                                  "exchangeFilters": [], "symbols": symbols})

    async def _klines(self, request: web.Request) -> web.StreamResponse:
        market = self._market(request)
        if isinstance(market, web.Response):
            return market
        if request.query.get("interval") != "1m":
            return _error(-1120, "Invalid interval.")
        if self._fail_klines_after is not None:
            answered = sum(1 for path, _ in self.requests if path == "/api/v3/klines") - 1
            if answered >= self._fail_klines_after:
                assert request.transport is not None
                request.transport.close()
                return web.Response()
        limit = min(int(request.query.get("limit", 500)), self.page_limit)
        start = max(int(request.query.get("startTime", self.listed_ms)), self.listed_ms)
        start = -(-start // MINUTE_MS) * MINUTE_MS
        end = min(int(request.query.get("endTime", self.now_ms)), self.now_ms - 1)
        rows = []
        open_ms = start
        while open_ms <= end and len(rows) < limit:
            close = kline_price(open_ms)
            rows.append([open_ms, _text(close - 0.1), _text(close + 0.5), _text(close - 0.5), _text(close), "1.5",
                         open_ms + MINUTE_MS - 1, "150.0", 3, "0.7", "70.0", "0"])
            open_ms += MINUTE_MS
        return web.json_response(rows)

    async def _agg_trades(self, request: web.Request) -> web.Response:
        market = self._market(request)
        if isinstance(market, web.Response):
            return market
        limit = min(int(request.query.get("limit", 500)), self.page_limit)
        start = int(request.query.get("startTime", 0))
        end = int(request.query.get("endTime", 2**62))
        rows = [t for t in market.trades if start <= t["T"] <= end][:limit]
        return web.json_response(rows)

    async def _depth(self, request: web.Request) -> web.Response:
        market = self._market(request)
        if isinstance(market, web.Response):
            return market
        if self.hold_snapshots:
            return web.json_response({"code": -1001, "msg": "Internal error."}, status=503)
        limit = int(request.query.get("limit", 100))
        bids = sorted(market.bids.items(), reverse=True)[:limit]
        asks = sorted(market.asks.items())[:limit]
        return web.json_response({"lastUpdateId": self.update_id,
                                  "bids": [[_text(p), _text(q)] for p, q in bids],
                                  "asks": [[_text(p), _text(q)] for p, q in asks]})

    # -- WebSocket ------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        topics: set[str] = set()
        entry = (ws, topics)
        self._sockets.append(entry)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                body = msg.json()
                if body.get("method") == "SUBSCRIBE":
                    topics.update(body.get("params", []))
                    await ws.send_json({"result": None, "id": body.get("id")})
                elif body.get("method") == "UNSUBSCRIBE":
                    topics.difference_update(body.get("params", []))
                    await ws.send_json({"result": None, "id": body.get("id")})
        finally:
            self._sockets.remove(entry)
        return ws

    async def _send(self, topic: str, message: dict[str, Any]) -> None:
        for ws, topics in list(self._sockets):
            if topic in topics and not ws.closed:
                await ws.send_json(message)


def _text(value: float) -> str:
    return f"{value:.8f}".rstrip("0").rstrip(".") or "0"


def _error(code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=400)
