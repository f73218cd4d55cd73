"""An answer set on the engine's threads and awaited by a coroutine, with one loop wake-up per burst.

`concurrent.futures.Future` wrapped with `asyncio.wrap_future` costs a condition, a chained future
and a loop wake-up per answer, which shows on an order's round trip through the gRPC loop. A
`Promise` is what the engine sets instead (`Core.submit(..., future=Promise())`): it queues the
answer in its loop's mailbox, and the answers of one engine batch wake the loop once.
"""

import asyncio
import threading
import weakref
from typing import Any

_mailboxes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox]" = weakref.WeakKeyDictionary()
_mailboxes_lock = threading.Lock()


class _Mailbox:
    """One loop's answers set on other threads and not yet delivered to its futures."""

    __slots__ = ("_loop", "_items", "_lock", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[tuple[asyncio.Future, Any, BaseException | None]] = []
        self._lock = threading.Lock()
        self._scheduled = False

    def put(self, future: asyncio.Future, value: Any, error: BaseException | None) -> None:
        with self._lock:
            self._items.append((future, value, error))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody waits for the answer any more
            pass

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
        for future, value, error in items:
            if future.done():  # the caller stopped waiting (cancelled, timed out)
                continue
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
    mailbox = _mailboxes.get(loop)
    if mailbox is None:
        with _mailboxes_lock:
            mailbox = _mailboxes.get(loop)
            if mailbox is None:
                mailbox = _mailboxes[loop] = _Mailbox(loop)
    return mailbox


class Promise:
    """The part of `concurrent.futures.Future` the engine sets, for a caller on the running loop.

    The engine takes the job whatever the caller does meanwhile (`set_running_or_notify_cancel`
    is always True): a caller that stops waiting does not unmake an order, it only misses its
    answer."""

    __slots__ = ("_future", "_mailbox", "_done")

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._future = loop.create_future()
        self._mailbox = _mailbox(loop)
        self._done = False

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def set_result(self, value: Any) -> None:
        self._done = True
        self._mailbox.put(self._future, value, None)

    def set_exception(self, error: BaseException) -> None:
        self._done = True
        self._mailbox.put(self._future, None, error)

    def done(self) -> bool:
        """Whether the engine has set it (not whether the caller has seen it)."""
        return self._done

    async def result(self, timeout: float) -> Any:
        """The answer, on the loop; TimeoutError after `timeout` seconds without one."""
        future = self._future
        timer = future.get_loop().call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
