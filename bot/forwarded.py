"""Who the client is, behind a reverse proxy the operator trusts.

Behind nginx or a load balancer every request comes from the proxy's
address over plain HTTP, so the login throttle would count every user as
one address, the session cookie would never be ``Secure``, and absolute
URLs would say ``http://``.  The proxy tells the truth in
``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Forwarded-Host``, but so
can anyone who connects directly, so those headers are believed only from
the addresses in the ``trusted_proxies`` setting (CIDRs).  The middleware
clones the request with the forwarded remote, scheme and host, so every
handler's ``request.remote``, ``request.secure`` and ``request.url`` already
mean the client's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_networks(values: Sequence[str]) -> list[Network]:
    """CIDRs (or single addresses) as networks; a ValueError names the one that is not."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an address or CIDR such as 10.0.0.0/8") from None
    return networks


def _trusted(address: str | None, networks: Sequence[Network]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str | None, forwarded_for: str, networks: Sequence[Network]) -> str | None:
    """The client's address: the right-most ``X-Forwarded-For`` hop that is not a trusted proxy (hops to its
    left may be forged by the client itself), or the peer when it is not trusted."""
    if not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def forwarded_middleware(networks: Sequence[Network]) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A middleware believing the forwarded headers of ``networks`` only; with none, it is not installed at all."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote
        if not _trusted(peer, networks):
            return await handler(request)
        changes: dict[str, str] = {}
        forwarded_for = request.headers.get("X-Forwarded-For")
        if forwarded_for:
            client = forwarded_client(peer, forwarded_for, networks)
            if client:
                changes["remote"] = client
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        host = request.headers.get("X-Forwarded-Host", "").split(",")[-1].strip()
        if host and all(ch.isalnum() or ch in ".-:[]" for ch in host):
            changes["host"] = host
        return await handler(request.clone(**changes) if changes else request)

    return middleware


def is_local_caller(request: web.Request) -> bool:
    """Whether the caller is on this machine: a loopback client address, and no proxy in between.

    A request that carries ``X-Forwarded-For`` went through a proxy, which
    may itself be on loopback while its client is anywhere.
    """
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        return ipaddress.ip_address((request.remote or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False
