"""Which URLs a webhook may be sent to: http(s), not too long, and (unless
WEBHOOK_ALLOW_PRIVATE_ADDRESSES) only at public addresses.

A host is resolved and every address it resolves to must be public: loopback, link-local,
private, shared (100.64/10), multicast, reserved and unspecified addresses are refused, so that
an API client cannot make the server call into its own network. The check runs when an endpoint
is registered and again before each attempt, which then connects to the very address it checked
(webhooks/sender.py): a name that resolves elsewhere the second time cannot slip past.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from webhooks.errors import UrlRefused


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line


def parse(url: object, *, max_length: int, field: str = "url") -> Target:
    """The URL's parts, or UrlRefused. Looks at the text only (no DNS)."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused("malformed", "A URL is required.", field)
    if len(url) > max_length:
        raise UrlRefused("too_long", f"At most {max_length} characters (this URL has {len(url)}).", field)
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise UrlRefused("malformed", "The URL has spaces or control characters.", field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("malformed", f"Not a valid URL ({exc}).", field) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("scheme", f"Only http:// and https:// URLs are accepted, not '{parts.scheme}:'.", field)
    if not parts.hostname:
        raise UrlRefused("malformed", "The URL has no host.", field)
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("malformed", "Credentials in the URL are not accepted; check the signature instead.", field)
    if parts.fragment:
        raise UrlRefused("malformed", "The URL has a #fragment, which is never sent.", field)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, parts.hostname, port or (443 if scheme == "https" else 80), path)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is link-local
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global is False for loopback, link-local, private, shared (100.64/10), documentation,
    # reserved and unspecified ranges; multicast ranges can be "global", so they are named too.
    return ip.is_global and not ip.is_multicast


def resolve(target: Target, *, allow_private: bool, field: str = "url") -> str:
    """The address to connect to: the first the host resolves to, once every one is allowed."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused("unresolvable", f"The host '{target.host}' does not resolve ({exc}).", field) from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise UrlRefused("unresolvable", f"The host '{target.host}' does not resolve.", field)
    if not allow_private:
        refused = [address for address in addresses if not is_public(address)]
        if refused:
            raise UrlRefused("private_address", f"The host '{target.host}' resolves to {refused[0]}, a loopback, "
                             "link-local, private, multicast or reserved address; webhooks go to public "
                             "addresses only.", field)
    return addresses[0]


def check(url: object, *, max_length: int, allow_private: bool, field: str = "url") -> Target:
    """Parse and resolve: what a registration checks before it stores the URL."""
    target = parse(url, max_length=max_length, field=field)
    resolve(target, allow_private=allow_private, field=field)
    return target
