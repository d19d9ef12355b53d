"""Which X-Forwarded-* headers are believed: those of ``TRUSTED_PROXY_HOPS`` proxies, and only on
requests that reach the app from a proxy's address (``TRUSTED_PROXY_ADDRESSES``).

werkzeug's ProxyFix believes whoever connects. If gunicorn were reachable past nginx (a firewall
mistake, a second interface), a client could name any address (rate limits, audit IPs, the
session list) and claim HTTPS. Requests from any other peer are served as if no proxy existed.
"""

from __future__ import annotations

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix

DEFAULT_TRUSTED_PROXY_ADDRESSES = "127.0.0.0/8,::1"
TRUSTED_PEER_ENVIRON_KEY = "retreat.from_trusted_proxy"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | None) -> tuple[Network, ...]:
    """``"10.0.0.5, 10.1.0.0/16, ::1"`` -> networks; anything else -> ValueError naming the bad item."""
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if not items:
        raise ValueError("TRUSTED_PROXY_ADDRESSES is empty: list the addresses (or networks) of your proxies, "
                         f"e.g. {DEFAULT_TRUSTED_PROXY_ADDRESSES}")
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"TRUSTED_PROXY_ADDRESSES: {item!r} is not an IP address or network "
                             "(e.g. 10.0.0.5 or 10.0.0.0/24)") from None
    return tuple(networks)


def is_trusted(peer: str | None, networks: tuple[Network, ...]) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)


class TrustedProxies:
    """WSGI middleware: ProxyFix for requests from a trusted peer, the plain app for the others."""

    def __init__(self, app, *, hops: int, networks: tuple[Network, ...]):
        self.app = app
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
        self.networks = networks

    def __call__(self, environ, start_response):
        trusted = is_trusted(environ.get("REMOTE_ADDR"), self.networks)
        environ[TRUSTED_PEER_ENVIRON_KEY] = trusted
        return (self.fixed if trusted else self.app)(environ, start_response)
