"""What the PeerJS server holds for peers, and the bounds on it.

Every held message is charged in bytes to the queue it waits in (one per destination peer,
connected or not), to the peer that sent it, and to the server as a whole. A message that would
pass any bound is refused, so the memory clients can make the daemon hold has a ceiling however
many destinations, senders or messages they invent.
"""

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final, NamedTuple

OVERHEAD: Final = 128
"""Bytes charged per message beyond its text (the str header, the entry and its deque slot), so
that a flood of tiny messages is bounded by bytes as well as by count."""


class Held(NamedTuple):
    """One message as it will be sent: its sender (None for the server's own OPEN and EXPIRE)."""

    src: str | None
    kind: str
    text: str

    @property
    def charge(self) -> int:
        return len(self.text) + OVERHEAD


@dataclass(eq=False)
class Queue:
    """Messages for one peer, oldest first: unsent to a connected peer, or unread by an absent one."""

    entries: deque[Held] = field(default_factory=deque)
    bytes: int = 0


@dataclass(frozen=True)
class Limits:
    """Named as the `[peerjs]` settings, which are also the reasons a message is refused."""

    queue_limit: int
    """Messages per queue."""
    queue_bytes: int
    peer_bytes: int
    """Held for one sender, in all queues."""
    total_bytes: int


class Budget:
    """The bytes held in every queue, by sender and in total; the only way in and out of a `Queue`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0
        self.senders: Counter[str] = Counter()

    def refusal(self, queue: Queue, held: Held) -> str | None:
        """The bound `held` would pass by joining `queue`, or None if it fits."""
        limits, charge = self.limits, held.charge
        if len(queue.entries) >= limits.queue_limit:
            return "queue_limit"
        if queue.bytes + charge > limits.queue_bytes:
            return "queue_bytes"
        if held.src is not None and self.senders[held.src] + charge > limits.peer_bytes:
            return "peer_bytes"
        if self.total + charge > limits.total_bytes:
            return "total_bytes"
        return None

    def put(self, queue: Queue, held: Held, first: bool = False) -> None:
        """Hold `held` (at the head with `first`); callers check `refusal` unless the server must say it."""
        charge = held.charge
        if first:
            queue.entries.appendleft(held)
        else:
            queue.entries.append(held)
        queue.bytes += charge
        self.total += charge
        if held.src is not None:
            self.senders[held.src] += charge

    def take(self, queue: Queue) -> Held:
        """The oldest message of a non-empty `queue`, no longer held."""
        held = queue.entries.popleft()
        charge = held.charge
        queue.bytes -= charge
        self.total -= charge
        if held.src is not None:
            left = self.senders[held.src] - charge
            if left:
                self.senders[held.src] = left
            else:
                del self.senders[held.src]
        return held

    def empty(self, queue: Queue) -> list[Held]:
        """Everything `queue` held, no longer held."""
        return [self.take(queue) for _ in range(len(queue.entries))]
