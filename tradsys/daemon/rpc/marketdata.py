"""MarketDataService: instruments, book, trades and bars, polled or streamed."""

import asyncio

import grpc

from tradsys.daemon.core import Core
from tradsys.daemon.book_feed import MAX_DEPTH, BookView, book_topic
from tradsys.daemon.feeds import Feeds
from tradsys.daemon.rpc.convert import bar_msg, levels, trade_msg
from tradsys.daemon.rpc.gate import Gate
from tradsys.daemon.rpc.streaming import Fanout, Stream, checked, pump
from tradsys.engine import Venue
from tradsys.engine.commands import fmt
from tradsys.proto import marketdata_pb2 as md
from tradsys.proto import marketdata_pb2_grpc as md_grpc

class MarketDataService(md_grpc.MarketDataServiceServicer):
    def __init__(self, core: Core, feeds: Feeds, fanout: Fanout, gate: Gate) -> None:
        self.core = core
        self.feeds = feeds
        self.fanout = fanout
        self.gate = gate

    def _symbol(self, context: grpc.ServicerContext, symbol: str) -> str:
        if symbol not in self.core.venue.instruments:
            known = ", ".join(self.core.venue.instruments)
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown symbol {symbol!r}; known: {known}")
        return symbol

    def _readable_symbol(self, context: grpc.ServicerContext, symbol: str) -> str:
        self.gate.check(context, "read")
        return self._symbol(context, symbol)

    def _interval(self, context: grpc.ServicerContext, interval: str) -> str:
        interval = interval or "1m"
        if interval not in self.feeds.intervals:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"interval must be one of {', '.join(self.feeds.intervals)}")
        return interval

    def ListInstruments(self, request: md.ListInstrumentsRequest, context: grpc.ServicerContext) -> md.ListInstrumentsResponse:
        self.gate.check(context, "read")

        def build(venue: Venue) -> list[md.Instrument]:
            return [
                md.Instrument(
                    symbol=i.symbol, base=i.base, quote=i.quote, tick_size=fmt(i.tick_size), lot_size=fmt(i.lot_size),
                    min_qty=fmt(i.qty(i.min_qty)), max_qty=fmt(i.qty(i.max_qty)),
                    status=md.Instrument.STATUS_HALTED if venue.halt_reason(i.symbol) else md.Instrument.STATUS_TRADING,
                )
                for i in venue.instruments.values()
            ]

        return md.ListInstrumentsResponse(instruments=self.core.query(build))

    def _snapshot(self, symbol: str, depth: int) -> BookView:
        return self.core.query(lambda venue: self.feeds.book.snapshot(venue, symbol, depth))

    def _depth(self, context: grpc.ServicerContext, depth: int) -> int:
        if depth > MAX_DEPTH:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"depth must be at most {MAX_DEPTH} (0: the whole book)")
        return depth

    def GetBook(self, request: md.GetBookRequest, context: grpc.ServicerContext) -> md.GetBookResponse:
        symbol = self._readable_symbol(context, request.symbol)
        view = self._snapshot(symbol, self._depth(context, request.depth))
        return md.GetBookResponse(book=_snapshot_msg(view))

    def GetTrades(self, request: md.GetTradesRequest, context: grpc.ServicerContext) -> md.GetTradesResponse:
        symbol = self._readable_symbol(context, request.symbol)
        trades = self.feeds.recent_trades(symbol, min(request.limit or 100, 1000), request.since_ns)
        return md.GetTradesResponse(trades=[trade_msg(t) for t in trades])

    def GetBars(self, request: md.GetBarsRequest, context: grpc.ServicerContext) -> md.GetBarsResponse:
        symbol = self._readable_symbol(context, request.symbol)
        interval = self._interval(context, request.interval)
        bars = self.feeds.bar_history(
            self.core.venue, symbol, interval, request.since_ns, request.until_ns or None, min(request.limit or 500, 2000)
        )
        return md.GetBarsResponse(bars=[bar_msg(b) for b in bars])

    async def StreamBook(self, request: md.StreamBookRequest, context: grpc.aio.ServicerContext) -> None:
        """A snapshot, then level deltas that continue it without gaps (each names the version it
        applies to, `prev_seq`), at the requested depth (0: the whole book). A slow reader is cut
        off rather than sent a book with holes, and reconnects for a fresh snapshot.
        """
        symbol, depth = await checked(
            context, lambda c: (self._readable_symbol(c, request.symbol), self._depth(c, request.depth)))
        stream = Stream(self.fanout, {book_topic(symbol, depth)})  # before the snapshot: it covers what came earlier
        try:
            view = await asyncio.get_running_loop().run_in_executor(None, self._snapshot, symbol, depth)
            await context.write(md.BookEvent(snapshot=_snapshot_msg(view)).SerializeToString())
        except BaseException:
            stream.close()
            raise
        await pump(context, stream, _update_msg, keep=lambda update: update.seq > view.seq)

    async def StreamTrades(self, request: md.StreamTradesRequest, context: grpc.aio.ServicerContext) -> None:
        symbol = await checked(context, lambda c: self._readable_symbol(c, request.symbol))
        await pump(context, Stream(self.fanout, {f"trades:{symbol}"}), trade_msg)

    async def StreamBars(self, request: md.StreamBarsRequest, context: grpc.aio.ServicerContext) -> None:
        symbol, interval = await checked(
            context, lambda c: (self._readable_symbol(c, request.symbol), self._interval(c, request.interval)))
        stream = Stream(self.fanout, {f"bars:{symbol}"}, accept=lambda _topic, bar: bar["interval"] == interval)
        await pump(context, stream, bar_msg)


def _update_msg(view: BookView) -> md.BookEvent:
    return md.BookEvent(update=md.BookUpdate(
        symbol=view.symbol, bids=levels(view.bids), asks=levels(view.asks), seq=view.seq, ts_ns=view.ts,
        prev_seq=view.prev_seq,
    ))


def _snapshot_msg(view: BookView) -> md.BookSnapshot:
    return md.BookSnapshot(symbol=view.symbol, bids=levels(view.bids), asks=levels(view.asks), seq=view.seq, ts_ns=view.ts)
