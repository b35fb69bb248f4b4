"""The one door for HTTP requests to user-given URLs: no internal, reserved or metadata destinations.

Checked twice. When a URL is saved, `check_url` refuses it if its host is an internal name or resolves to
an address that is not globally routable. When a message is sent, the client from `guarded_client`
resolves the host once, refuses it the same way, and connects to exactly the address it checked (TLS
still verifies the certificate against the host name), so a name that changes its answer in between
(DNS rebinding) gains nothing. Redirects are never followed. `ZHIBAN_EGRESS_ALLOW` lets an admin open
the door for real internal receivers.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpcore
import httpx

from zhiban.core.errors import InvalidInput
from zhiban.core.settings import Settings, SettingsSource

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 2_000
# Cloud instance metadata (AWS, GCP, Azure, Alibaba, Oracle, AWS IPv6): refused even when allowlisted.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
# Names that only mean something inside a network (RFC 6761/6762, cloud-internal zones, metadata aliases).
INTERNAL_NAMES = frozenset({"localhost", "metadata", "instance-data", "metadata.google.internal"})
INTERNAL_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa", ".intranet", ".lan")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedDestination(InvalidInput):
    """A URL whose host is internal, reserved or metadata, and not on the admin's allowlist."""

    type_ = "blocked-destination"
    title = "Blocked destination"


class EgressRefused(Exception):
    """A send stopped by the guard; `summary` is the short class kept for users."""

    def __init__(self, summary: str, detail: str) -> None:
        super().__init__(f"{summary}: {detail}")
        self.summary = summary
        self.detail = detail


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (numeric forms like 2130706433 included)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), which is where it really goes."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, multicast, reserved or unspecified."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return is_public(inner)
    if isinstance(ip, ipaddress.IPv6Address) and (ip.teredo is not None or ip.is_site_local):
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _is_metadata(ip: IPAddress) -> bool:
    inner = _embedded_ipv4(ip)
    return ip in METADATA_ADDRESSES or (inner is not None and inner in METADATA_ADDRESSES)


def is_internal_name(host: str) -> bool:
    """A name that only resolves inside a network: localhost, *.internal, metadata aliases…"""
    name = host.lower().rstrip(".")
    return name in INTERNAL_NAMES or name.endswith(INTERNAL_SUFFIXES)


@dataclass(frozen=True)
class EgressPolicy:
    """Where user-given URLs may go: anywhere public, plus the admin's allowed networks and hosts."""

    networks: tuple[IPNetwork, ...] = ()
    # (host name, port or None for any); a name "*.corp.example" allows every name under corp.example.
    hosts: frozenset[tuple[str, int | None]] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def parse(cls, allow: str, resolver: Resolver = system_resolver) -> EgressPolicy:
        """Read ZHIBAN_EGRESS_ALLOW: comma-separated CIDRs or addresses, and host[:port] names."""
        networks: list[IPNetwork] = []
        hosts: set[tuple[str, int | None]] = set()
        for raw in allow.split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            hosts.add(_host_entry(entry))
        return cls(tuple(networks), frozenset(hosts), resolver)

    def allows_host(self, host: str, port: int) -> bool:
        """The admin allowed this name (and port), whatever it resolves to."""
        name = host.lower().rstrip(".")
        for allowed, allowed_port in self.hosts:
            if allowed_port is not None and allowed_port != port:
                continue
            if name == allowed or (allowed.startswith("*.") and name.endswith(allowed[1:])):
                return True
        return False

    def allows_address(self, ip: IPAddress) -> bool:
        """Public, or inside a network the admin allowed; metadata addresses never."""
        if _is_metadata(ip):
            return False
        return is_public(ip) or any(ip.version == net.version and ip in net for net in self.networks)

    def vet(self, host: str, port: int, addresses: Iterable[str]) -> list[IPAddress]:
        """The addresses to connect to, or EgressRefused when any of them (or the name) is not allowed."""
        try:
            vetted = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        except ValueError as exc:
            raise EgressRefused("DNS failure", f"{host}: {exc}") from exc
        if self.allows_host(host, port):
            if any(_is_metadata(ip) for ip in vetted):
                raise EgressRefused("blocked destination", f"{host} resolves to a metadata address")
            return vetted
        if is_internal_name(host):
            raise EgressRefused("blocked destination", f"{host} is an internal name")
        for ip in vetted:
            if not self.allows_address(ip):
                raise EgressRefused("blocked destination", f"{host} resolves to {ip}, which is not public")
        return vetted

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Resolve once and vet; EgressRefused("DNS failure") when the name has no address."""
        literal = _literal(host)
        if literal is not None:
            return self.vet(host, port, [str(literal)])
        if is_internal_name(host) and not self.allows_host(host, port):
            raise EgressRefused("blocked destination", f"{host} is an internal name")
        try:
            found = self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise EgressRefused("DNS failure", f"{host}: {exc}") from exc
        if not found:
            raise EgressRefused("DNS failure", f"{host} has no address")
        return self.vet(host, port, found)


_NAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def _host_entry(entry: str) -> tuple[str, int | None]:
    """One host[:port] of the allowlist ([v6]:port for an address with a port)."""
    host, port = entry.lower(), None
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else "x")
    else:
        host, _, port_text = host.partition(":")
    if port_text:
        port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else -1
    host = host.rstrip(".")
    if port == -1 or not (_NAME.match(host) or _literal(host) is not None) or len(host) > 253:
        raise InvalidInput(f"ZHIBAN_EGRESS_ALLOW: {entry[:100]!r} is neither a CIDR nor host[:port]")
    return host, port


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@lru_cache(maxsize=4)
def _parsed(allow: str) -> EgressPolicy:
    return EgressPolicy.parse(allow)


# The allowlist is read at every save and send from the settings notify.hooks hands over (never kept here).
current_settings: SettingsSource[Settings] = SettingsSource("zhiban.notify.hooks")


def current_policy() -> EgressPolicy:
    """The policy from ZHIBAN_EGRESS_ALLOW as the settings read it now."""
    return _parsed(current_settings().egress_allow)


def _url_parts(url: str) -> tuple[str, int]:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"a URL is at most {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidInput("must be an http(s) URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInput("must be an http(s) URL")
    if parsed.userinfo:
        raise InvalidInput("a webhook URL may not carry a user name or password")
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


def check_url(url: str, policy: EgressPolicy | None = None) -> None:
    """Refuse, before it is saved, a URL that the guard would refuse at send time.

    A name that does not resolve yet is accepted: it is resolved and judged again at every send.
    """
    policy = policy or current_policy()
    host, port = _url_parts(url)
    try:
        policy.resolve(host, port)
    except EgressRefused as exc:
        if exc.summary == "DNS failure":
            return
        raise BlockedDestination(
            "this URL points to an internal, reserved or metadata address; zhiban does not send there "
            "(an admin can allow real internal receivers with ZHIBAN_EGRESS_ALLOW)"
        ) from exc


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy vetted, resolved exactly once per connection."""

    def __init__(self, policy: Callable[[], EgressPolicy]) -> None:
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve, vet every address, then connect to a vetted address (never to the name again)."""
        addresses = self._policy().resolve(host, port)
        error: Exception | None = None
        for ip in addresses:
            try:
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the next address, as create_connection would
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Never: a user-given URL has no business with local sockets."""
        raise EgressRefused("blocked destination", "unix sockets are not allowed")


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport whose every connection goes through the egress guard."""

    def __init__(
        self,
        policy: EgressPolicy | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 50,
    ) -> None:
        self._fixed = policy
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._max_connections = max_connections
        self._built_for: EgressPolicy | None = None
        self._transport: httpx.HTTPTransport | None = None

    def _policy(self) -> EgressPolicy:
        if self._fixed is not None:
            return self._fixed
        try:
            return current_policy()
        except InvalidInput as exc:  # a broken allowlist fails closed
            raise EgressRefused("blocked destination", exc.detail) from exc

    def _current(self) -> httpx.HTTPTransport:
        policy = self._policy()
        with self._lock:
            # Pooled connections were vetted under the policy of their time: a changed allowlist drops them.
            if self._transport is None or self._built_for != policy:
                if self._transport is not None:
                    self._transport.close()
                transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=self._max_connections))
                transport._pool = httpcore.ConnectionPool(
                    ssl_context=self._ssl_context or httpx.create_ssl_context(),
                    max_connections=self._max_connections,
                    max_keepalive_connections=20,
                    keepalive_expiry=5.0,
                    network_backend=_GuardedBackend(self._policy),
                )
                self._transport, self._built_for = transport, policy
            return self._transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the pool built for the current policy."""
        return self._current().handle_request(request)

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None


def guarded_client(
    *,
    policy: EgressPolicy | None = None,
    timeout: httpx.Timeout | float = 10.0,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """An httpx client for user-given URLs: guarded, no redirects, no proxies from the environment."""
    # A proxy would resolve the name itself, out of the guard's sight; so environment proxies are ignored.
    return httpx.Client(
        transport=GuardedTransport(policy, ssl_context=ssl_context),
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        trust_env=False,
    )


def is_guarded(client: httpx.Client) -> bool:
    """The client sends through the guard (a channel refuses any other)."""
    return isinstance(getattr(client, "_transport", None), GuardedTransport) and not getattr(client, "_mounts", None)
