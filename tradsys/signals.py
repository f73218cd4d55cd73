"""A trading signal as peers exchange it: one JSON-shaped object, the same in every serialization.

    {"symbol": "BTC-USD", "side": "buy", "strength": 0.7, "time": 1764900000123, "sender": "desk-1",
     "signature": "9f2c..."}

`symbol` and one of `side` ("buy"/"sell") or `value` (a number) are required; `time` is epoch
milliseconds (JavaScript's Date.now()), `sender` the sending peer's id; other fields travel as they
are. Two ways for a receiver to ignore strangers:

- `signature`, when the peers share a secret: the hex HMAC-SHA256 of the canonical JSON of every
  other field but `subject` (sorted keys, no spaces, UTF-8); it also shows tampering.
- `subject`: the JWT subject of the token the sending peer registered with, as the daemon's
  signaling vouches for it (it stamps every message it relays, as it does `src`). The receiver
  sets it from the connection (`with_subject`); whatever a sender writes there is replaced.

The model is pure (no aiortc): the backtester reads recorded signals with it too.
"""

import hashlib
import hmac
import json
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any, Final

SIDES: Final = ("buy", "sell")
RESERVED: Final = ("symbol", "side", "value", "time", "sender", "signature", "subject")


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
    subject: str = ""
    """The sender's JWT subject as the daemon vouched for it; "" when unknown."""

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
        subject = doc.get("subject", "")
        extra = {k: v for k, v in doc.items() if k not in RESERVED}
        return cls(symbol, side, value, int(stamp), sender, extra, signature, subject if isinstance(subject, str) else "")

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
        if self.subject:
            doc["subject"] = self.subject
        return doc

    def with_subject(self, subject: str) -> "Signal":
        """This signal as received from a peer whose token's subject is `subject` ("" if unknown)."""
        return replace(self, subject=subject)

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
        doc.pop("subject", None)
        return hmac.compare_digest(self.signature, _digest(doc, secret))


def _digest(doc: dict[str, Any], secret: bytes) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


def admit(doc: Any, peer: str, subject: str, secret: bytes | None = None,
          subjects: Collection[str] | None = None) -> Signal:
    """The signal in `doc` as received on a connection from `peer`, whose token subject the daemon
    vouched is `subject`; raises InvalidSignal saying why a receiver ignores it: malformed, unsigned
    or wrongly signed when there is a `secret`, from a subject not in `subjects` (when given), or
    sent in another peer's name."""
    signal = Signal.parse(doc).with_subject(subject)
    if secret is not None and not signal.verified(secret):
        raise InvalidSignal(f"{'bad' if signal.signature else 'no'} signature")
    if subjects is not None and subject not in subjects:
        raise InvalidSignal(f"token subject {subject or '(none)'!r} is not an allowed sender")
    if signal.sender and signal.sender != peer:
        raise InvalidSignal(f"sent in the name of {signal.sender}")
    return signal
