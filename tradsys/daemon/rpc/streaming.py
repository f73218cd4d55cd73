"""Server streams fed from the hub, as coroutines on the gRPC loop.

A stream holds no thread. The loop has one hub subscription per topic (`Fanout`): the engine
thread hands each item over once, with one loop wake-up per burst, and the loop copies it to every
stream that follows the topic, so publishing costs the engine the same for one stream as for
thousands. Each item is serialized once for all the streams that send it (the stream handlers'
response serializer is off: they write bytes). Every stream's inbox is bounded: a reader that
falls too far behind is cut off with RESOURCE_EXHAUSTED and reconnects.
"""

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import grpc

from tradsys.daemon.hub import LAGGING, Encoded, Hub, Subscription

T = TypeVar("T")
Accept = Callable[[str, Any], bool]
MAX_PENDING = 10_000
"""Items one stream may have waiting to be written before it is cut off."""
MAX_HANDOFF = 200_000
"""Items handed to the loop and not yet copied to the streams: past this the loop as a whole is
behind, and every stream is cut off rather than the daemon's memory growing."""
ENCODED_MEMO = 4096


class Closed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stream:
    """One server stream's bounded inbox, on the loop thread; `close` (always, when the stream
    ends) stops following its topics."""

    def __init__(self, fanout: "Fanout", topics: Iterable[str], accept: Accept | None = None) -> None:
        self.fanout = fanout
        self._topics = frozenset(topics)
        self._accept = accept
        self._items: deque[Any] = deque()
        self._ready = asyncio.Event()
        self.closed_reason: str | None = None
        for topic in self._topics:
            fanout.follow(topic, self)

    def put(self, topic: str, item: Any) -> None:
        if self.closed_reason is not None or (self._accept is not None and not self._accept(topic, item)):
            return
        if len(self._items) >= MAX_PENDING:
            self.cut(LAGGING)
            return
        self._items.append(item)
        self._ready.set()

    def cut(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            self._items.clear()
            self._ready.set()

    async def next(self) -> list[Any]:
        """What has arrived since the last call (waiting for something); raises `Closed` once cut off."""
        while not self._items:
            if self.closed_reason is not None:
                raise Closed(self.closed_reason)
            self._ready.clear()
            await self._ready.wait()
        items = list(self._items)
        self._items.clear()
        return items

    def close(self) -> None:
        for topic in self._topics:
            self.fanout.leave(topic, self)


class Fanout:
    """The gRPC loop's one subscription per hub topic (the fanout is their shared inbox), copying
    each item to the streams that follow it."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: dict[str, set[Stream]] = {}
        self._subs: dict[str, Subscription] = {}
        self._pending: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._encoded: dict[Callable[[Any], Any | None], Encoded] = {}
        """Per converter (a module function: a few of them), its output for recent items."""

    # -- loop thread ----------------------------------------------------------------------

    def follow(self, topic: str, stream: Stream) -> None:
        self._loop = asyncio.get_running_loop()
        self._streams.setdefault(topic, set()).add(stream)
        if topic not in self._subs:
            self._subs[topic] = self.hub.attach(Subscription(frozenset({topic}), self))

    def leave(self, topic: str, stream: Stream) -> None:
        streams = self._streams.get(topic)
        if streams is None:
            return
        streams.discard(stream)
        if not streams:
            del self._streams[topic]
            self.hub.unsubscribe(self._subs.pop(topic))

    def encode(self, item: Any, convert: Callable[[Any], Any | None]) -> bytes | None:
        """`convert(item)` serialized, once for all the streams that send the same item."""
        encoded = self._encoded.get(convert)
        if encoded is None:
            encoded = self._encoded[convert] = Encoded(ENCODED_MEMO)
        return encoded.get(item, lambda it: _serialized(convert(it)))

    def _deliver(self) -> None:
        with self._lock:
            items = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        streams = self._streams
        for topic, item in items:
            for stream in tuple(streams.get(topic, ())):
                stream.put(topic, item)

    def _cut_all(self, reason: str) -> None:
        for streams in list(self._streams.values()):
            for stream in tuple(streams):
                stream.cut(reason)

    # -- any thread -----------------------------------------------------------------------

    def put(self, topic: str, item: Any) -> None:
        """Called by the hub on the publishing (engine) thread: never blocks, wakes the loop once per burst."""
        with self._lock:
            if len(self._pending) >= MAX_HANDOFF:
                self._pending.clear()
                self._call(self._cut_all, LAGGING)
                return
            self._pending.append((topic, item))
            if self._scheduled:
                return
            self._scheduled = True
        self._call(self._deliver)

    def close(self, reason: str) -> None:
        """The hub closed a subscription (the daemon is stopping): every stream ends."""
        self._call(self._cut_all, reason)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the daemon is stopping
            pass


def _serialized(msg: Any | None) -> bytes | None:
    return None if msg is None else msg.SerializeToString()


async def pump(context: grpc.aio.ServicerContext, stream: Stream, convert: Callable[[Any], Any | None],
               keep: Callable[[Any], bool] | None = None) -> None:
    """Send each item `keep` lets through, as `convert` makes it (None: nothing to send), until the
    client leaves; the stream is closed however it ends. `convert` is shared by every stream of
    its kind (its output is memoized per item), `keep` is this stream's own filter."""
    encode = stream.fanout.encode
    try:
        while True:
            for item in await stream.next():
                if keep is None or keep(item):
                    data = encode(item, convert)
                    if data is not None:
                        await context.write(data)
    except Closed as exc:
        code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.reason == LAGGING else grpc.StatusCode.UNAVAILABLE
        await context.abort(code, exc.reason)
    finally:
        stream.close()


class _Refusal(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _Probe:
    """What the synchronous checks (the gate, argument checks) use of a context, for a coroutine
    handler: their abort becomes an exception that `checked` turns into the real, awaited abort."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._context.set_trailing_metadata(metadata)

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise _Refusal(code, details)


async def checked(context: grpc.aio.ServicerContext, check: Callable[[Any], T]) -> T:
    """Run a synchronous check written for a gRPC context (`check(context)`) in a coroutine handler."""
    try:
        return check(_Probe(context))
    except _Refusal as refusal:
        await context.abort(refusal.code, refusal.details)
        raise  # abort raises; this line only tells the type checker
