"""Server streams fed from the hub: one loop, shared by every streaming RPC."""

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from tradsys.daemon.hub import Hub, Subscription


def pump(hub: Hub, sub: Subscription, context: grpc.ServicerContext, convert: Callable[[Any], Any | None]) -> Iterator[Any]:
    """Yield `convert(item)` for each item until the client leaves; None from convert skips the item.

    A subscription cut off for lagging ends the stream with RESOURCE_EXHAUSTED.
    """
    context.add_callback(lambda: hub.unsubscribe(sub))
    try:
        while context.is_active():
            got = sub.get(timeout=0.5)
            if got is not None:
                msg = convert(got[1])
                if msg is not None:
                    yield msg
            elif sub.closed_reason is not None:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, sub.closed_reason)
    finally:
        hub.unsubscribe(sub)
