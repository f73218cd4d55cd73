"""A trading signal as peers exchange it: one JSON-shaped object, the same in every serialization.

    {"symbol": "BTC-USD", "side": "buy", "strength": 0.7, "time": 1764900000123, "sender": "desk-1",
     "signature": "9f2c..."}

`symbol` and one of `side` ("buy"/"sell") or `value` (a number) are required; `time` is epoch
milliseconds (JavaScript's Date.now()), `sender` the sending peer's id; other fields travel as they
are. `signature`, when the peers share a secret, is the hex HMAC-SHA256 of the canonical JSON of
every other field (sorted keys, no spaces, UTF-8), so a receiver can ignore strangers and tampering.
"""

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, Final

SIDES: Final = ("buy", "sell")
RESERVED: Final = ("symbol", "side", "value", "time", "sender", "signature")


class InvalidSignal(ValueError):
    """Not a signal: a required field is missing or of the wrong type, or its signature is wrong."""


@dataclass(frozen=True)
class Signal:
    symbol: str
    side: str | None = None
    value: float | None = None
    time: int = 0
    sender: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    signature: str | None = None

    @classmethod
    def parse(cls, doc: Any) -> "Signal":
        """A signal from its wire object; raises InvalidSignal."""
        if not isinstance(doc, dict):
            raise InvalidSignal(f"a signal is a JSON object, not {type(doc).__name__}")
        symbol, side, value = doc.get("symbol"), doc.get("side"), doc.get("value")
        if not isinstance(symbol, str) or not symbol:
            raise InvalidSignal("a signal needs a symbol")
        if side is not None and side not in SIDES:
            raise InvalidSignal(f"side is buy or sell, not {side!r}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidSignal(f"value is a number, not {value!r}")
        if side is None and value is None:
            raise InvalidSignal("a signal needs a side or a value")
        stamp, sender, signature = doc.get("time", 0), doc.get("sender", ""), doc.get("signature")
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not isinstance(sender, str):
            raise InvalidSignal("time is epoch milliseconds and sender a peer id")
        if signature is not None and not isinstance(signature, str):
            raise InvalidSignal("signature is a hex string")
        extra = {k: v for k, v in doc.items() if k not in RESERVED}
        return cls(symbol, side, value, int(stamp), sender, extra, signature)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"symbol": self.symbol}
        if self.side is not None:
            doc["side"] = self.side
        if self.value is not None:
            doc["value"] = self.value
        doc.update(self.extra)
        doc["time"] = self.time
        doc["sender"] = self.sender
        if self.signature is not None:
            doc["signature"] = self.signature
        return doc

    def stamped(self, sender: str, secret: bytes | None = None) -> "Signal":
        """This signal as `sender` sends it now: timed (unless it has a time), and signed with `secret`."""
        unsigned = Signal(self.symbol, self.side, self.value, self.time or int(time.time() * 1000), sender,
                          self.extra)
        if secret is None:
            return unsigned
        return Signal(**{**unsigned.__dict__, "signature": _digest(unsigned.to_doc(), secret)})

    def verified(self, secret: bytes) -> bool:
        """Whether the signature is the one `secret` makes (False when unsigned)."""
        if self.signature is None:
            return False
        doc = self.to_doc()
        del doc["signature"]
        return hmac.compare_digest(self.signature, _digest(doc, secret))


def _digest(doc: dict[str, Any], secret: bytes) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()
