"""Who is asking, by network address: the socket's peer, or the client a trusted proxy names.

`X-Forwarded-For` is believed only when the connection comes from a proxy the operator named
(`assistant serve --trusted-proxy 127.0.0.1`); anyone else could write any address there. Behind
the proxy the header is read from the right, skipping further trusted proxies, so the address is
the one the outermost trusted proxy saw. Addresses are parsed, so a header can never plant an
arbitrary string in the log-in throttle's table.
"""

from __future__ import annotations

import contextvars
import ipaddress

# The address of the HTTP request being handled: set by ui.gate for every request, read by the
# log-in callback (Gradio calls it with the name and password only).
CURRENT = contextvars.ContextVar("client_address", default="unknown")


class Clients:
    def __init__(self, trusted_proxies=()):
        self.trusted = [parse_network(spec) for spec in trusted_proxies]

    def address(self, peer: str | None, forwarded_for: str | None = None) -> str:
        """The client address for a connection from `peer` carrying this `X-Forwarded-For`."""
        peer_ip = _ip(peer)
        if peer_ip is None:
            return "unknown"
        if not forwarded_for or not self._is_trusted(peer_ip):
            return str(peer_ip)
        for hop in reversed(forwarded_for.split(",")[-32:]):
            hop_ip = _ip(hop.strip())
            if hop_ip is None:
                break  # a malformed hop: trust nothing further left of it
            if not self._is_trusted(hop_ip):
                return str(hop_ip)
        return str(peer_ip)

    def of_scope(self, scope) -> str:
        """The client address of an ASGI HTTP scope."""
        peer = (scope.get("client") or (None,))[0]
        forwarded = None
        for key, value in scope.get("headers") or ():
            if key == b"x-forwarded-for":
                forwarded = value.decode("latin-1") if forwarded is None else f"{forwarded},{value.decode('latin-1')}"
        return self.address(peer, forwarded)

    def of_request(self, request) -> str:
        """The client address of a Starlette/FastAPI request (or "unknown" without one)."""
        if request is None:
            return "unknown"
        client = getattr(request, "client", None)
        return self.address(getattr(client, "host", None), request.headers.get("x-forwarded-for"))

    def _is_trusted(self, ip) -> bool:
        return any(ip.version == net.version and ip in net for net in self.trusted)


def parse_network(spec: str):
    """An address or network (`127.0.0.1`, `10.0.0.0/8`, `::1`); ValueError with a clear message."""
    try:
        return ipaddress.ip_network(str(spec).strip(), strict=False)
    except ValueError:
        raise ValueError(f"--trusted-proxy {spec!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)") \
            from None


def _ip(text: str | None):
    try:
        ip = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    return ip.ipv4_mapped or ip if ip.version == 6 else ip
