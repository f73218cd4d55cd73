"""Promise: answers set on other threads reach coroutines on their loop, one loop wake-up per burst."""

import asyncio
import threading

import pytest

from tradsys.daemon.promise import Promise


def _counting_wakeups(loop: asyncio.AbstractEventLoop) -> list[int]:
    """Counts the loop's `call_soon_threadsafe` calls (the wake-ups from other threads)."""
    count = [0]
    original = loop.call_soon_threadsafe

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        count[0] += 1
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    return count


def test_answers_set_on_another_thread_reach_their_awaiters_in_order() -> None:
    async def main() -> list[object]:
        promises = [Promise() for _ in range(5)]

        def engine() -> None:
            for i, promise in enumerate(promises):
                if i == 3:
                    promise.set_exception(ValueError("refused"))
                else:
                    promise.set_result(i)

        threading.Thread(target=engine).start()
        out: list[object] = []
        for promise in promises:
            try:
                out.append(await promise.result(10))
            except ValueError as exc:
                out.append(str(exc))
        return out

    assert asyncio.run(main()) == [0, 1, 2, "refused", 4]


def test_a_burst_of_answers_wakes_the_loop_once() -> None:
    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        wakeups = _counting_wakeups(loop)
        promises = [Promise() for _ in range(50)]
        done = threading.Event()

        def engine() -> None:  # one batch: all its answers set while the loop is busy
            for i, promise in enumerate(promises):
                promise.set_result(i)
            done.set()

        thread = threading.Thread(target=engine)
        thread.start()
        assert done.wait(10)  # blocks the loop until the whole burst is set
        results = [await promise.result(10) for promise in promises]
        thread.join(10)
        return results, wakeups[0]

    results, wakeups = asyncio.run(main())
    assert results == list(range(50))
    assert wakeups == 1


def _recording_errors(loop: asyncio.AbstractEventLoop) -> list[dict]:
    """What the loop's callbacks raised (the loop logs it and goes on)."""
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


def test_no_answer_in_time_is_a_timeout_and_a_late_answer_is_dropped() -> None:
    async def main() -> None:
        errors = _recording_errors(asyncio.get_running_loop())
        promise = Promise()
        with pytest.raises(TimeoutError):
            await promise.result(0.01)
        thread = threading.Thread(target=promise.set_result, args=("late",))
        thread.start()
        thread.join(10)
        await asyncio.sleep(0)  # the delivery runs and skips the expired future
        assert promise.done()
        assert errors == []

    asyncio.run(main())


def test_a_caller_that_stops_waiting_does_not_stop_the_engine() -> None:
    async def main() -> None:
        errors = _recording_errors(asyncio.get_running_loop())
        promise = Promise()
        waiter = asyncio.create_task(promise.result(10))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert promise.set_running_or_notify_cancel(), "the engine still takes the job"
        thread = threading.Thread(target=promise.set_result, args=("placed",))
        thread.start()
        thread.join(10)
        await asyncio.sleep(0)
        assert errors == []

    asyncio.run(main())


def test_an_answer_after_the_loop_closed_is_dropped() -> None:
    loop = asyncio.new_event_loop()
    promise = loop.run_until_complete(_make())
    loop.close()
    promise.set_result("nobody waits")
    assert promise.done()


async def _make() -> Promise:
    return Promise()
