"""The daemon's own peer: its strategies publish signals through it and receive the ones peers send.

Any peer that connects to it (`[p2p] id`, "tradsys" by default) subscribes: what a strategy publishes
(`ctx.publish_signal`) goes to every open connection, and each signal a subscriber sends is handed
to `deliver` (the strategy host, which queues it for the strategies trading its symbol), with the
sender's token subject (`subject`) as the daemon's signaling vouched for it. With a `secret`,
published signals are signed and received ones that are not are ignored; with `senders`, signals
from peers whose token subject is not listed are ignored. The peer runs on a thread with its own
event loop, so neither WebRTC nor a slow subscriber ever blocks the engine or the HTTP server; the
engine side only calls `publish`, which hands the signal over and returns.
Until the signaling server has registered the peer it keeps trying (a refusal of its key or id is
final): meanwhile senders' offers wait on the server, then expire, and they are told (EXPIRE).
"""

import asyncio
import logging
import threading
from collections.abc import Callable, Collection, Coroutine
from typing import Any, Final

from tradsys.p2p.connection import ConnectionClosed, DataConnection
from tradsys.p2p.peer import Peer
from tradsys.p2p.signaling import SignalingError
from tradsys.signals import InvalidSignal, Signal, admit

log = logging.getLogger("tradsys.p2p")

MAX_SUBSCRIBERS: Final = 100
"""Open connections to the daemon's peer; past it a new one is closed."""
RETRY_S: Final = 1.0
"""Pause between registration attempts (each already retries for its own timeout)."""


class SignalHub:
    def __init__(self, url: str, key: str, peer_id: str, deliver: Callable[[dict[str, Any]], None],
                 secret: bytes | None = None, senders: Collection[str] | None = None, attempt_s: float = 10.0) -> None:
        """`senders`: the token subjects whose signals are delivered (None: any); `attempt_s`: how long
        one registration attempt waits for the server's OPEN."""
        self.peer = Peer(url, key, peer_id)
        self.attempt_s = attempt_s
        self.deliver = deliver
        self.secret = secret
        self.senders = None if senders is None else frozenset(senders)
        self.subscribers: set[DataConnection] = set()
        self.received = 0
        self.ignored = 0
        self.published = 0
        self.registered = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        """The peer's own tasks (registration and accepting, one reader per subscriber), ended by `stop`."""
        self._thread = threading.Thread(target=self._run, name="tradsys-p2p", daemon=True)

    def start(self, timeout: float = 10.0) -> bool:
        """Start the peer's thread and wait (up to `timeout`) until the signaling server has it;
        False if it has not yet (it goes on trying)."""
        self._thread.start()
        return self.registered.wait(timeout)

    def publish(self, doc: dict[str, Any]) -> None:
        """Send a signal to every subscriber (any thread; returns at once)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._broadcast, doc)

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    async def _close(self) -> None:
        await self.peer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        loop.call_soon(self._spawn, self._main())
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _main(self) -> None:
        while True:
            try:
                await self.peer.start(self.attempt_s)
                break
            except SignalingError as exc:
                log.error("p2p.hub_refused id=%s error=%s", self.peer.id, exc)
                return
            except (OSError, TimeoutError) as exc:
                log.warning("p2p.hub_unregistered id=%s error=%r retrying=true", self.peer.id, exc)
                await asyncio.sleep(RETRY_S)
        self.registered.set()
        log.info("p2p.hub_open id=%s", self.peer.id)
        while True:
            conn = await self.peer.accept()
            if len(self.subscribers) >= MAX_SUBSCRIBERS:
                await conn.close()
                continue
            self.subscribers.add(conn)
            self._spawn(self._read(conn))

    async def _read(self, conn: DataConnection) -> None:
        said = False
        try:
            while True:
                doc = await conn.recv()
                try:
                    signal = admit(doc, conn.peer, conn.subject, self.secret, self.senders)
                except InvalidSignal as exc:
                    self.ignored += 1
                    if not said:  # once per connection: a stranger's flood does not flood the log
                        said = True
                        log.warning("p2p.signal_ignored peer=%s subject=%s reason=%s", conn.peer, conn.subject, exc)
                    continue
                self.received += 1
                self.deliver(signal.to_doc())
        except ConnectionClosed:
            pass
        finally:
            self.subscribers.discard(conn)

    def _broadcast(self, doc: dict[str, Any]) -> None:
        try:
            wire = Signal.parse(doc).stamped(self.peer.id, self.secret).to_doc()
        except InvalidSignal as exc:
            log.warning("p2p.unpublishable error=%s", exc)
            return
        self.published += 1
        for conn in list(self.subscribers):
            try:
                conn.send(wire)
            except ConnectionClosed:
                self.subscribers.discard(conn)
