"""Which of the machine's addresses the server offers as its ICE host candidates.

aiortc gathers through aioice, which offers every address of every interface but loopback and
has no option to choose. SESSION_WEBRTC_HOST_ADDRESSES names the ones to offer instead: a server
with container bridges or several networks keeps media on the one its viewers reach, and
loopback-only tests and benches name 127.0.0.1 (which aioice would never offer). The choice is
made by replacing aioice's address lookup, once per process.
"""

from __future__ import annotations

import ipaddress

import aioice.ice

_every_address = aioice.ice.get_host_addresses


def offer_only(addresses: list[str]) -> None:
    """Offer just `addresses` (IPv4 or IPv6 literals) from now on; an empty list restores the
    default (every address but loopback). A bad literal raises ValueError."""
    chosen = [str(ipaddress.ip_address(address)) for address in addresses]
    if not chosen:
        aioice.ice.get_host_addresses = _every_address
        return

    def chosen_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [address for address in chosen
                if (use_ipv4 if ipaddress.ip_address(address).version == 4 else use_ipv6)]

    aioice.ice.get_host_addresses = chosen_addresses
