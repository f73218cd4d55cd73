"""A bounded memory of ids, for duplicate detection that a long-running venue can afford."""

from collections import deque


class RecentIds(set[str]):
    """The last `limit` ids added. An id older than that is forgotten: a venue that assigns its
    own increasing ids never repeats one, and a replayed command stream may reuse an id only after
    `limit` newer ones. A set itself, so that the membership test on every new order stays in C."""

    __slots__ = ("limit", "_order")

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self._order: deque[str] = deque()

    def add(self, item: str) -> None:
        if item in self:
            return
        super().add(item)
        self._order.append(item)
        if len(self._order) > self.limit:
            self.discard(self._order.popleft())

    def __reduce__(self) -> tuple:
        """Pickle (engine snapshots) as the limit and the ids oldest first: set's own reduce would
        call __init__ with the ids and lose them."""
        return _restore, (self.limit, list(self._order))


def _restore(limit: int, ids: list[str]) -> RecentIds:
    restored = RecentIds(limit)
    for item in ids:
        restored.add(item)
    return restored
