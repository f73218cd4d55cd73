"""A bounded memory of ids, for duplicate detection that a long-running venue can afford."""

from collections import deque
from collections.abc import Iterator


class RecentIds:
    """The last `limit` ids added, with O(1) membership. An id older than that is forgotten:
    a venue that assigns its own increasing ids never repeats one, and a replayed command stream
    may reuse an id only after `limit` newer ones."""

    __slots__ = ("limit", "_ids", "_order")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def add(self, item: str) -> None:
        if item in self._ids:
            return
        self._ids.add(item)
        self._order.append(item)
        if len(self._order) > self.limit:
            self._ids.discard(self._order.popleft())

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        """Oldest first."""
        return iter(self._order)
