"""Which local addresses our ICE candidates use.

aioice offers every interface's address except loopback, and aiortc has no option to choose. Tests
and same-host demos must keep WebRTC traffic on 127.0.0.1, so `use_addresses` replaces aioice's
address lookup for the whole process (aiortc reads it at every gathering): all peers of one
process share one choice. None restores aioice's own.
"""

from collections.abc import Sequence

import aioice.ice

_aioice_addresses = aioice.ice.get_host_addresses
_chosen: tuple[str, ...] | None = None


def use_addresses(addresses: Sequence[str] | None) -> None:
    """Gather host candidates on `addresses` only (e.g. ("127.0.0.1",)), or None for every interface."""
    global _chosen
    _chosen = None if addresses is None else tuple(addresses)


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _chosen is None:
        return _aioice_addresses(use_ipv4, use_ipv6)
    return [a for a in _chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


aioice.ice.get_host_addresses = _host_addresses
