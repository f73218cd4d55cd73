"""BinaryPack, the `binary` serialization of the PeerJS client (its default): msgpack's older sibling,
not msgpack. Strings are 0xb0+n / 0xd8 / 0xd9 and byte strings 0xa0+n / 0xda / 0xdb, where msgpack
has str8 and bin types, so a msgpack library reads and writes it wrongly.

Python values map as JavaScript's do: None ↔ null (undefined also reads as None), bool, int, float
(always written as a double, exactly), str, bytes ↔ ArrayBuffer, list/tuple ↔ Array, dict ↔ Object.
"""

import struct
from typing import Any


class BinaryPackError(ValueError):
    """The bytes are not BinaryPack, or a value has no BinaryPack form."""


def pack(value: Any) -> bytes:
    out = bytearray()
    _pack(value, out)
    return bytes(out)


def _sized(out: bytearray, length: int, short: int | None, prefix16: int, prefix32: int) -> None:
    if short is not None and length <= 0x0F:
        out.append(short + length)
    elif length <= 0xFFFF:
        out.append(prefix16)
        out += length.to_bytes(2, "big")
    elif length <= 0xFFFFFFFF:
        out.append(prefix32)
        out += length.to_bytes(4, "big")
    else:
        raise BinaryPackError(f"too long for BinaryPack: {length}")


def _pack(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif isinstance(value, int):
        _pack_int(value, out)
    elif isinstance(value, float):
        out.append(0xCB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        encoded = value.encode()
        _sized(out, len(encoded), 0xB0, 0xD8, 0xD9)
        out += encoded
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        _sized(out, len(raw), 0xA0, 0xDA, 0xDB)
        out += raw
    elif isinstance(value, (list, tuple)):
        _sized(out, len(value), 0x90, 0xDC, 0xDD)
        for item in value:
            _pack(item, out)
    elif isinstance(value, dict):
        _sized(out, len(value), 0x80, 0xDE, 0xDF)
        for key, item in value.items():
            _pack(key, out)
            _pack(item, out)
    else:
        raise BinaryPackError(f"no BinaryPack form for {type(value).__name__}")


_INTS = (
    (0x00, 0xFF, 0xCC, ">B"), (-0x80, 0x7F, 0xD0, ">b"), (0x0000, 0xFFFF, 0xCD, ">H"),
    (-0x8000, 0x7FFF, 0xD1, ">h"), (0, 0xFFFFFFFF, 0xCE, ">I"), (-0x80000000, 0x7FFFFFFF, 0xD2, ">i"),
    (-(2**63), 2**63 - 1, 0xD3, ">q"), (0, 2**64 - 1, 0xCF, ">Q"),
)
"""The JavaScript packer's order of choice: the first range that holds the number wins."""


def _pack_int(value: int, out: bytearray) -> None:
    if -0x20 <= value <= 0x7F:
        out.append(value & 0xFF)
        return
    for low, high, prefix, fmt in _INTS:
        if low <= value <= high:
            out.append(prefix)
            out += struct.pack(fmt, value)
            return
    raise BinaryPackError(f"integer out of BinaryPack's range: {value}")


def unpack(data: bytes) -> Any:
    return _Reader(data).value()


_FIXED = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
          0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
_CONSTANTS = {0xC0: None, 0xC1: None, 0xC2: False, 0xC3: True, 0xD4: None, 0xD5: None, 0xD6: None, 0xD7: None}
_LENGTH = {0xD8: (2, "str"), 0xD9: (4, "str"), 0xDA: (2, "raw"), 0xDB: (4, "raw"),
           0xDC: (2, "array"), 0xDD: (4, "array"), 0xDE: (2, "map"), 0xDF: (4, "map")}
_SHORT = ((0xA0, "raw"), (0xB0, "str"), (0x90, "array"), (0x80, "map"))


class _Reader:
    __slots__ = ("data", "index")

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.index = 0

    def take(self, size: int) -> memoryview:
        end = self.index + size
        if end > len(self.data):
            raise BinaryPackError(f"BinaryPack truncated: need {size} bytes at {self.index} of {len(self.data)}")
        chunk = self.data[self.index:end]
        self.index = end
        return chunk

    def value(self) -> Any:
        kind = self.take(1)[0]
        if kind < 0x80:
            return kind
        if kind >= 0xE0:
            return kind - 0x100
        for base, shape in _SHORT:
            if base <= kind <= base + 0x0F:
                return self.sized(shape, kind - base)
        if kind in _CONSTANTS:
            return _CONSTANTS[kind]
        fmt = _FIXED.get(kind)
        if fmt is not None:
            return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        if kind not in _LENGTH:
            raise BinaryPackError(f"not a BinaryPack type byte: {kind:#04x}")
        width, shape = _LENGTH[kind]
        return self.sized(shape, int.from_bytes(self.take(width), "big"))

    def sized(self, shape: str, size: int) -> Any:
        if shape == "raw":
            return bytes(self.take(size))
        if shape == "str":
            return str(self.take(size), "utf-8", "replace")
        if shape == "array":
            return [self.value() for _ in range(size)]
        result = {}
        for _ in range(size):
            key = self.value()
            result[key if isinstance(key, str) else str(key)] = self.value()
        return result
