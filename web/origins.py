"""Where a request comes from: the page that sent it (Origin) and the client's address.

Invariants:
- The server's own origin is `public_origin` when `public_url` is set, else the request's
  scheme and Host (and the same host over https, for a proxy that ends TLS in front of us).
  Only those and `allowed_origins` may sign in or open the websocket from a browser.
- A request without an Origin header is allowed: browsers send one on every cross-origin POST
  and websocket, so its absence means a non-browser client (curl, another system), which
  carries no victim's cookies.
- The client's address is `request.remote`, unless that is a trusted proxy: then it is the
  right-most address in X-Forwarded-For that is not a trusted proxy (what lies left of it
  is whatever the client wrote and is never believed).
"""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from web.keys import SETTINGS

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _normalized(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def own_origins(request: web.Request) -> frozenset[str]:
    """The origins of this server's own pages, as browsers write them in Origin headers."""
    public = request.app[SETTINGS].public_origin
    if public is not None:
        return frozenset({_normalized(public)})
    host = request.host.lower()
    return frozenset({f"{request.scheme}://{host}", f"https://{host}"})


def origin_allowed(request: web.Request) -> bool:
    """Whether the request's Origin (if any) is ours or listed in `allowed_origins`."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = own_origins(request) | {
        _normalized(listed) for listed in request.app[SETTINGS].allowed_origins
    }
    return _normalized(origin) in allowed


@functools.cache
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in network for network in networks)


def client_address(request: web.Request) -> str:
    """The address of the client, seen through the trusted proxies; "unknown" if none."""
    remote = request.remote or "unknown"
    networks = _networks(tuple(request.app[SETTINGS].trusted_proxies))
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    for hop in reversed(hops):
        if _ip(hop) is None:
            break  # not written by a proxy of ours: stop believing the header here
        if not _trusted(hop, networks):
            return hop
    return remote
