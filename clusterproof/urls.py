"""Addresses in URLs and `host:port` strings, IPv4 and IPv6 alike: an IPv6 address is written in
brackets (`http://[fd00:10:96::a]:80/`, `[fd00:10:244:1::5]:8080`), as RFC 3986 and every tool
(curl, iptables-save, nft, Go's net.JoinHostPort) write it."""

from __future__ import annotations

import ipaddress


def host_port(host: str, port: int | str) -> str:
    """`host:port`; an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def url(host: str, port: int | str, path: str = "/", scheme: str = "http") -> str:
    return f"{scheme}://{host_port(host, port)}{path}"


def host_of(address: str) -> str:
    """The host of `host:port` (`[v6]:port` too), without brackets: what a server reports as the
    peer (Go's RemoteAddr) back to a plain address."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    return host.strip("[]")


def family(address: str) -> int:
    """4 or 6, of an address or a network (`10.96.0.1`, `fd00:10:244::/56`)."""
    return ipaddress.ip_network(address, strict=False).version


def host_prefix(address: str) -> str:
    """The address as a one-host network, as iptables-save prints it (`/32`, `/128`)."""
    return f"{address}/{32 if family(address) == 4 else 128}"
