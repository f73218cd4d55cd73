"""One exception type for every refusal, carrying a stable machine-readable reason.

The edges translate it once: a gRPC status, a WebSocket error frame, a CLI exit code.
"""


class Rejected(Exception):
    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message
