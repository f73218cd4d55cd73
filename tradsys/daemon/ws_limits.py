"""The WebSocket's per-connection bounds (`[ws]` in config.toml) and the request rate they set."""

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class WsLimits:
    """Per-connection limits; `[ws]` in config.toml overrides any of them."""

    queue: int = 2000
    """Pending pushes per connection before book deltas are conflated (and, failing that, the client cut off)."""
    send_timeout: float = 10.0
    """A frame the client has not taken in this long closes the connection as too slow."""
    send_buffer: int = 64 * 1024
    """Bytes a connection may have unsent (kernel SO_SNDBUF and our write buffer each): a client that
    stops reading is detected after that much, not after the kernel's autotuned megabytes, and is
    closed (4008) once a frame has waited `send_timeout`."""
    max_connections: int = 1000
    """Open WebSocket connections (both paths together); the next is closed at once with 1013."""
    max_frame: int = 64 * 1024
    """Largest incoming message; bigger ones close the connection with 1009."""
    rate: float = 50.0
    """Requests per second a connection may sustain..."""
    burst: int = 100
    """...with bursts up to this many."""
    flood_close: int = 200
    """Consecutive over-limit requests before the connection is closed as a flood."""
    max_channels: int = 64
    """Channels one connection may subscribe to at once."""
    auth_timeout: float = 10.0
    """Seconds a connection may stay unauthenticated."""
    max_inflight: int = 64
    """Trading requests a connection may have waiting on the engine at once."""
    batch: int = 256
    """Most pushes in one /ws/v2 frame."""
    ping_interval: float = 20.0
    """Seconds between the server's pings..."""
    ping_timeout: float = 40.0
    """...and how long a pong may take: a peer silent for about a minute is dropped."""


class RequestRate:
    """A token bucket of `rate` requests a second with bursts of `burst`, counting the requests
    refused in a row: a client that keeps on past the limit is a flood, not a burst."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last_refill = time.monotonic()
        self.over_limit = 0
        """Requests refused since the last one admitted."""

    def admit(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last_refill) * self.rate)
        self.last_refill = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.over_limit = 0
            return True
        self.over_limit += 1
        return False
