"""The daemon's own peer, `[p2p]` in config.toml: read and checked whether or not the peer is on, so
a misspelt key is refused at start rather than leaving the peer silently off."""

from dataclasses import dataclass


@dataclass(frozen=True)
class P2pConfig:
    enabled: bool = False
    """Join the daemon's own /peerjs as a peer, for the strategies' signals (aiortc is imported only then)."""
    id: str = "tradsys"
    """The peer id other peers connect to."""
    secret: str = ""
    """A shared secret: what the daemon publishes is signed with it (HMAC) and unsigned signals are ignored."""
    senders: tuple[str, ...] = ()
    """Token subjects whose signals are delivered; when not given, any sender's."""
    ice_addresses: tuple[str, ...] = ()
    """The only host addresses offered as ICE candidates; when not given, every interface's."""
