"""A bounded memory of ids, for duplicate detection that a long-running venue can afford."""

from collections.abc import Iterator

from mypy_extensions import mypyc_attr


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RecentIds:
    """Remembers at least the last `limit` ids added, and never more than twice that.

    Two generations of sets: when the newer one holds `limit` ids it becomes the older one and
    the older one is dropped. Adding and testing stay one or two set operations, with no
    per-id bookkeeping of age. A venue that assigns its own increasing ids never repeats one,
    and a replayed command stream may reuse an id only after `limit` newer ones.
    """

    __slots__ = ("limit", "_new", "_old")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._new: set[str] = set()
        self._old: set[str] = set()

    def __contains__(self, item: str) -> bool:
        return item in self._new or item in self._old

    def __len__(self) -> int:
        return len(self._new) + len(self._old - self._new)

    def __iter__(self) -> Iterator[str]:
        yield from self._old - self._new
        yield from self._new

    def add(self, item: str) -> None:
        new = self._new
        new.add(item)
        if len(new) >= self.limit:
            self._old = new
            self._new = set()
