"""Peer-to-peer trading signals: a PeerJS-compatible peer on WebRTC data channels (aiortc).

Importing this package loads aiortc: only the commands and services that talk peer to peer do.
"""

from tradsys.p2p.connection import ConnectionClosed, DataConnection, PeerUnavailable
from tradsys.p2p.ice import use_addresses
from tradsys.p2p.peer import Peer, signaling_url
from tradsys.p2p.serialization import SERIALIZATIONS, MessageTooBig
from tradsys.p2p.signaling import SignalingError

__all__ = ["SERIALIZATIONS", "ConnectionClosed", "DataConnection", "MessageTooBig", "Peer", "PeerUnavailable",
           "SignalingError", "signaling_url", "use_addresses"]
