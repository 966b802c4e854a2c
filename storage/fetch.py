"""Fetching user-supplied URLs (input files, `audio_url`, webhooks) without SSRF.

A user URL may only reach public addresses: every address its host resolves to must be public
(or be exempted by `GENGATE_ALLOW_PRIVATE_HOSTS`), and the request then goes to exactly the address
that was checked, so DNS cannot answer differently between the check and the connection
(rebinding). Redirects are followed here, one by one, each target checked like the first URL.
The whole exchange has one time cap and the body one size cap.

Errors:

    UnsafeURL              refused by policy (scheme, host, non-public address); the refused
                           address is never contacted. The message is safe to show to users.
    FetchError(status)     the exchange failed: network error, total timeout, too many redirects,
     |                     non-2xx answer (`fetch_hash`); `status` is the HTTP status if any.
     +-- TooLarge          the body is larger than the size cap.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, BinaryIO

import httpx

from gengate.config.settings import get_settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_REDIRECTABLE_METHODS = frozenset({"GET", "HEAD"})
# What a host may look like once httpx has parsed it (IDNA-encoded, lower case, IPv6 unbracketed):
# anything else (percent-escapes, IPv6 zone ids) is refused rather than handed to the resolver.
_HOST = re.compile(r"[a-z0-9._:\-]+")
_ALLOW_HOST_ENTRY = re.compile(r"[a-z0-9_]([a-z0-9_\-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_\-]*[a-z0-9_])?)*")

# Ranges that `ipaddress.is_global` (Python 3.11) still calls global but that lead somewhere
# non-public: translation prefixes embed an IPv4 address that a gateway then reaches for us.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT
        "192.88.99.0/24",  # 6to4 relay anycast
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
    )
)


class UnsafeURL(Exception):
    """The URL is refused by policy; the message says why, for the user."""


class FetchError(Exception):
    """Fetching failed (network, timeout, HTTP status); `status` is the HTTP status, if there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TooLarge(FetchError):
    """The body is larger than the size cap."""


@dataclass(frozen=True)
class Policy:
    """Exemptions from the public-address rule: host names as written in a URL, and networks."""

    allow_hosts: frozenset[str]
    allow_nets: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, spec: str) -> Policy:
        """From `GENGATE_ALLOW_PRIVATE_HOSTS`: comma-separated host names, IP addresses or CIDRs."""
        hosts: set[str] = set()
        nets: list[IPNetwork] = []
        for raw in spec.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or not _ALLOW_HOST_ENTRY.fullmatch(entry):
                raise ValueError(f"not a host name or CIDR in the private-host allow list: {raw.strip()!r}")
            hosts.add(entry)
        return cls(frozenset(hosts), tuple(nets))


@lru_cache(maxsize=1)
def get_policy() -> Policy:
    return Policy.parse(get_settings().allow_private_hosts)


def check_syntax(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, host IDNA-encoded and lower case; else UnsafeURL."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise UnsafeURL("not a valid URL") from None
    if parsed.scheme not in _DEFAULT_PORTS:
        raise UnsafeURL("only http and https URLs are allowed")
    if parsed.userinfo:
        raise UnsafeURL("URLs with credentials are not allowed")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise UnsafeURL("URL has no host")
    if not _HOST.fullmatch(host):
        raise UnsafeURL("URL host is not valid")
    port = _DEFAULT_PORTS[parsed.scheme] if parsed.port is None else parsed.port
    if not 0 < port < 65536:
        raise UnsafeURL("URL port is not valid")
    return parsed.scheme, host, port


def resolve_public(host: str, port: int, policy: Policy) -> list[str]:
    """The addresses `host` resolves to, all of them allowed by `policy`; else UnsafeURL."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # gaierror is an OSError; over-long labels fail IDNA encoding
        raise UnsafeURL(f"host {host!r} could not be resolved") from None
    return _checked_addresses(host, infos, policy)


async def check_url(url: str, policy: Policy | None = None, *, timeout: float = 3.0) -> None:
    """For the API, before accepting a URL: syntax, then resolution on the running loop (the
    resolver runs in the loop's executor, so the loop is not blocked), all addresses allowed."""
    _, host, port = check_syntax(url)
    policy = get_policy() if policy is None else policy
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (OSError, UnicodeError, TimeoutError):
        raise UnsafeURL(f"host {host!r} could not be resolved") from None
    _checked_addresses(host, infos, policy)


def _checked_addresses(host: str, infos: list[tuple[Any, ...]], policy: Policy) -> list[str]:
    addresses = list(dict.fromkeys(i[4][0] for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)))
    if not addresses:
        raise UnsafeURL(f"host {host!r} could not be resolved")
    if host in policy.allow_hosts:
        return addresses
    for address in addresses:
        if not _allowed(ipaddress.ip_address(address), policy):
            # The address itself is not named: it could reveal the operator's internal DNS.
            raise UnsafeURL(f"host {host!r} resolves to a private or reserved address")
    return addresses


def _allowed(ip: IPAddress, policy: Policy) -> bool:
    # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket: judge (and exempt) the IPv4 address.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in policy.allow_nets):
        return True
    return _is_public(ip)


def _is_public(ip: IPAddress) -> bool:
    # is_global alone lets multicast, site-local fec0::/10 and translation prefixes through.
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_private:
        return False
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    return not any(ip in net for net in _NOT_PUBLIC)


class _Deadline:
    """The time cap of one whole exchange: every hop, headers and body.

    httpx's timeouts bound each socket operation, so a server that sends a byte now and then would
    never time out. When the time is up, a timer shuts down every socket of the exchange, which wakes
    a blocked read at once; the resulting httpx error becomes FetchError("timed out")."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if self.expired or left <= 0:
            raise self.timed_out()
        return left

    def timed_out(self) -> FetchError:
        return FetchError(f"timed out after {self.seconds:g} s")

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's `trace` request extension: learns the socket of each new connection (TCP,
        then TLS), so even a server trickling its response headers is cut off."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # The plain socket method, also for a TLS socket: SSLSocket.shutdown would drop its SSL object
    # under the thread that is reading. OSError: already closed, or detached by the TLS wrap.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _failure(exc: httpx.HTTPError, deadline: _Deadline) -> FetchError:
    """A user-facing FetchError for an httpx error (the cause stays chained for the logs)."""
    if deadline.expired or isinstance(exc, httpx.TimeoutException):
        return deadline.timed_out()
    if isinstance(exc, httpx.ConnectError):
        return FetchError("could not connect to the host")
    if isinstance(exc, httpx.RemoteProtocolError):
        return FetchError("the server sent an invalid HTTP response")
    return FetchError("the connection failed")


class _GuardedBody(httpx.SyncByteStream):
    """The response body as the caller reads it, cut off past the size cap or the deadline."""

    def __init__(self, inner: httpx.SyncByteStream, deadline: _Deadline, max_bytes: int, declared: str | None):
        self._inner = inner
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._declared = declared

    def __iter__(self) -> Iterator[bytes]:
        if self._declared and self._declared.isdigit() and int(self._declared) > self._max_bytes:
            raise TooLarge(f"larger than {self._max_bytes} bytes")
        size = 0
        try:
            for chunk in self._inner:
                size += len(chunk)
                if size > self._max_bytes:
                    raise TooLarge(f"larger than {self._max_bytes} bytes")
                self._deadline.remaining()
                yield chunk
        except httpx.HTTPError as exc:
            raise _failure(exc, self._deadline) from exc

    def close(self) -> None:
        self._inner.close()


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle for every fetch would cost more than many fetches.
    return httpx.create_ssl_context()


def _new_client() -> httpx.Client:
    # trust_env=False: an HTTP(S)_PROXY from the environment would make the connection to the
    # proxy, not to the checked address, and verify TLS against the IP instead of the host name.
    return httpx.Client(verify=_ssl_context(), trust_env=False, follow_redirects=False)


@contextmanager
def open_url(
    url: str,
    *,
    policy: Policy | None = None,
    method: str = "GET",
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    max_redirects: int | None = None,
    client: httpx.Client | None = None,
    max_bytes: int | None = None,
) -> Iterator[httpx.Response]:
    """The streaming response of a checked request to a user URL; read it with `iter_bytes()`.

    GET and HEAD follow up to `max_redirects` redirects, each target checked; other methods are
    never redirected (a webhook body must not land elsewhere). A redirect that is not followed
    (past the limit, or not GET/HEAD) is a FetchError carrying its 3xx status. `timeout` caps the whole exchange, body included; reading more
    than `max_bytes` raises TooLarge. Defaults come from settings.

    A `client` of the caller's (tests with their own CA) must not be shared across trust domains:
    its connection pool is keyed by address, so a TLS connection verified for one host name could
    be reused for another name on the same address."""
    settings = get_settings()
    policy = get_policy() if policy is None else policy
    timeout = settings.fetch_timeout_seconds if timeout is None else timeout
    max_bytes = settings.fetch_max_bytes if max_bytes is None else max_bytes
    max_redirects = settings.fetch_max_redirects if max_redirects is None else max_redirects
    method = method.upper()
    if method not in _REDIRECTABLE_METHODS:
        max_redirects = 0

    deadline = _Deadline(timeout)
    own_client = client is None
    http = _new_client() if client is None else client
    try:
        response = _send_following(http, url, method, content, headers or {}, policy, max_redirects, deadline)
        try:
            # A HEAD answer declares the length of a body it does not send.
            declared = None if method == "HEAD" else response.headers.get("content-length")
            response.stream = _GuardedBody(response.stream, deadline, max_bytes, declared)
            yield response
        finally:
            response.close()
    finally:
        deadline.cancel()
        if own_client:
            http.close()


def _send_following(
    client: httpx.Client,
    url: str,
    method: str,
    content: bytes | None,
    headers: dict[str, str],
    policy: Policy,
    max_redirects: int,
    deadline: _Deadline,
) -> httpx.Response:
    hops = 0
    while True:
        try:
            response = _send_checked(client, url, method, content, headers, policy, deadline)
        except UnsafeURL as exc:
            if hops:
                raise UnsafeURL(f"redirect refused: {exc}") from None
            raise
        location = response.headers.get("location")
        if response.status_code not in _REDIRECT_STATUSES or location is None:
            return response
        response.close()
        if hops >= max_redirects:
            status = response.status_code
            if max_redirects == 0:
                raise FetchError(f"the server redirected (HTTP {status}); redirects are not followed", status=status)
            raise FetchError(f"too many redirects (more than {max_redirects})", status=status)
        hops += 1
        try:
            target = str(httpx.URL(url).join(location).copy_with(fragment=None))
        except httpx.InvalidURL:
            raise UnsafeURL("redirect refused: not a valid URL") from None
        if _origin(target) != _origin(url):
            # Credentials meant for the first host must not travel to another one.
            headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
        url = target


def _origin(url: str) -> tuple[str, bytes, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.raw_host, parsed.port


def _send_checked(
    client: httpx.Client,
    url: str,
    method: str,
    content: bytes | None,
    headers: dict[str, str],
    policy: Policy,
    deadline: _Deadline,
) -> httpx.Response:
    """One request to `url`, sent to an address checked just now, never resolved again by httpx."""
    scheme, host, port = check_syntax(url)
    addresses = resolve_public(host, port, policy)
    parsed = httpx.URL(url)
    request_headers = httpx.Headers({"Accept-Encoding": "identity"})
    request_headers.update(headers)
    request_headers["Host"] = parsed.netloc.decode("ascii")
    extensions: dict[str, Any] = {"trace": deadline.trace}
    if scheme == "https" and not _is_ip_literal(host):
        # TLS sends and verifies the certificate against the real host name, not the IP we dial.
        extensions["sni_hostname"] = host
    last_error: httpx.HTTPError | None = None
    for address in addresses:
        request = client.build_request(
            method,
            parsed.copy_with(host=address),
            headers=request_headers,
            content=content,
            timeout=httpx.Timeout(deadline.remaining()),
            extensions=extensions,
        )
        try:
            response = client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:  # nothing was sent: the next checked address may answer
            last_error = exc
            continue
        except httpx.HTTPError as exc:
            raise _failure(exc, deadline) from exc
        deadline.watch(response.extensions.get("network_stream"))  # a pooled connection: no trace
        return response
    assert last_error is not None
    raise _failure(last_error, deadline) from last_error


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _media_type(content_type: str | None) -> str | None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type or None


@dataclass(frozen=True)
class Fetched:
    sha256: str
    size: int
    media_type: str | None


def fetch_hash(
    url: str, *, policy: Policy | None = None, max_bytes: int | None = None, timeout: float | None = None,
    into: BinaryIO | None = None,
) -> Fetched:
    """GET a user URL and hash its body as it streams by: nothing is kept in memory, and with `into`
    the body is also written to that file (media jobs need the bytes, not only their hash).

    Non-2xx is FetchError(status=...); a body over `max_bytes` (after any content decoding, so a
    compressed body cannot expand past the cap either) is TooLarge."""
    limit = get_settings().fetch_max_bytes if max_bytes is None else max_bytes
    with open_url(url, policy=policy, timeout=timeout, max_bytes=limit) as response:
        if not response.is_success:
            raise FetchError(f"the server answered HTTP {response.status_code}", status=response.status_code)
        digest = hashlib.sha256()
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"larger than {limit} bytes")
            digest.update(chunk)
            if into is not None:
                into.write(chunk)
        return Fetched(digest.hexdigest(), size, _media_type(response.headers.get("content-type")))
