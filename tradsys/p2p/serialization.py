"""The PeerJS serializations of a data connection: how a value becomes data channel messages and back.

- `binary` (also `binary-utf8` and the client's `default`): BinaryPack; a packed value over
  `CHUNK_SIZE` bytes goes as numbered chunks `{__peerData: n, n: i, total, data}` that the receiver
  joins, because browsers cut larger messages.
- `json`: UTF-8 JSON in binary messages, refused at `CHUNK_SIZE` bytes or more (the JS client does too).
- `raw`: str and bytes as they are.

`{__peerData: {type: "close"}}` is the client's "close after what I sent" (`close({flush: true})`).
"""

import json
from typing import Any, Final

from tradsys.p2p import binarypack

CHUNK_SIZE: Final = 16300
"""The JS client's chunkedMTU: larger messages are cut after 16 KiB between Firefox and Chrome."""
MAX_PARTIAL: Final = 64
"""Chunked messages being joined at once per connection; past it the oldest is dropped."""
CLOSE: Final = {"__peerData": {"type": "close"}}
SERIALIZATIONS: Final = ("binary", "binary-utf8", "json", "raw", "default")
PENDING: Final = object()
"""What `decode` returns for a chunk of a message not yet complete."""


class MessageTooBig(ValueError):
    """A `json` message of CHUNK_SIZE bytes or more (browsers would cut it)."""


class Closing(Exception):
    """The remote side asked to close the connection (a flushed close)."""


class Codec:
    """One connection's serialization; `decode` returns PENDING while a chunked message is incomplete."""

    name = "raw"

    def encode(self, value: Any) -> list[bytes | str]:
        if not isinstance(value, (bytes, str)):
            raise TypeError(f"a raw connection sends str or bytes, not {type(value).__name__}")
        return [value]

    def decode(self, message: bytes | str) -> Any:
        return message


class JsonCodec(Codec):
    name = "json"

    def encode(self, value: Any) -> list[bytes | str]:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        if len(encoded) >= CHUNK_SIZE:
            raise MessageTooBig(f"{len(encoded)} bytes is too big for a json connection (limit {CHUNK_SIZE - 1})")
        return [encoded]

    def decode(self, message: bytes | str) -> Any:
        value = json.loads(message)
        if value == CLOSE:
            raise Closing
        return value


class BinaryCodec(Codec):
    name = "binary"

    def __init__(self) -> None:
        self._next_id = 1
        self._partial: dict[int, dict[int, bytes]] = {}

    def encode(self, value: Any) -> list[bytes | str]:
        packed = binarypack.pack(value)
        if len(packed) <= CHUNK_SIZE:
            return [packed]
        total = -(-len(packed) // CHUNK_SIZE)
        chunk_id, self._next_id = self._next_id, self._next_id + 1
        return [binarypack.pack({"__peerData": chunk_id, "n": n, "data": packed[start:start + CHUNK_SIZE],
                                 "total": total})
                for n, start in enumerate(range(0, len(packed), CHUNK_SIZE))]

    def decode(self, message: bytes | str) -> Any:
        value = binarypack.unpack(message.encode() if isinstance(message, str) else message)
        peer_data = value.get("__peerData") if isinstance(value, dict) else None
        if not peer_data:
            return value
        if isinstance(peer_data, dict):
            if peer_data.get("type") == "close":
                raise Closing
        if not isinstance(peer_data, int):
            return PENDING
        return self._join(peer_data, value)

    def _join(self, chunk_id: int, chunk: dict[str, Any]) -> Any:
        n, total, data = chunk.get("n"), chunk.get("total"), chunk.get("data")
        if not isinstance(n, int) or not isinstance(total, int) or not isinstance(data, bytes) or not 0 <= n < total:
            return PENDING
        parts = self._partial.setdefault(chunk_id, {})
        parts[n] = data
        if len(parts) < total:
            if len(self._partial) > MAX_PARTIAL:
                del self._partial[next(iter(self._partial))]
            return PENDING
        del self._partial[chunk_id]
        return self.decode(b"".join(parts[i] for i in range(total)))


def codec(serialization: str) -> Codec:
    if serialization in ("binary", "binary-utf8", "default"):
        return BinaryCodec()
    if serialization == "json":
        return JsonCodec()
    if serialization == "raw":
        return Codec()
    raise ValueError(f"unknown serialization {serialization!r}: one of {', '.join(SERIALIZATIONS)}")
