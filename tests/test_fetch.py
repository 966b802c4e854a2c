"""storage.fetch against real HTTP(S) servers on 127.0.0.1, reached as `localhost` (the one name the
test policy exempts); every other spelling of loopback must stay refused."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import http.server
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gengate.storage.fetch import (
    FetchError,
    Fetched,
    Policy,
    TooLarge,
    UnsafeURL,
    check_syntax,
    check_url,
    fetch_hash,
    get_policy,
    open_url,
    resolve_public,
)

pytestmark = pytest.mark.timeout(30)

LOCAL = Policy.parse("localhost")
NOBODY = Policy.parse("")
OK_BODY = b"gengate input file\n" * 500
BIG = 64 * 1024 * 1024  # what the oversized endpoints try to send
CHUNK = 64 * 1024


@dataclass
class Server:
    port: int
    scheme: str = "http"
    hits: list[str] = field(default_factory=list)
    posts: list[bytes] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # bytes of body written by the oversized endpoints
    done: dict[str, threading.Event] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://localhost:{self.port}"


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, a body without Content-Length ends at the close.
    state: Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.state.hits.append(self.path)
        path, _, query = self.path.partition("?")
        if path == "/ok":
            self._answer(200, OK_BODY, Content_Type="image/png; charset=binary")
        elif path == "/host":
            self._answer(200, self.headers["Host"].encode())
        elif path == "/to":
            self._answer(302, Location=urllib.parse.parse_qs(query)["url"][0])
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left:
                self._answer(302, Location=f"/chain/{left - 1}")
            else:
                self._answer(200, b"end of chain", Content_Type="text/plain")
        elif path.startswith("/status/"):
            self._answer(int(path.rsplit("/", 1)[1]), b"no")
        elif path in ("/big", "/big-unsized"):
            self._big(path, declared=path == "/big")
        elif path == "/trickle-body":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self._trickle(b"x" * 1000)
        elif path == "/trickle-headers":
            self._trickle(b"HTTP/1.0 200 OK\r\nX-Slow: " + b"z" * 1000)
        elif path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.flush()
            time.sleep(3)
        else:
            self._answer(404)

    def do_POST(self) -> None:
        self.state.hits.append(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/hook":
            self.state.posts.append(body)
            self._answer(200, self.headers.get("X-Signature", "").encode())
        elif self.path == "/hook-redirect":
            self._answer(307, Location="/hook")
        else:
            self._answer(404)

    def _big(self, path: str, declared: bool) -> None:
        sent = 0
        self.state.done[path] = done = threading.Event()
        try:
            self.send_response(200)
            if declared:
                self.send_header("Content-Length", str(BIG))
            self.end_headers()
            while sent < BIG:
                self.wfile.write(b"b" * CHUNK)
                sent += CHUNK
        except OSError:  # the client hung up: what we want
            pass
        finally:
            self.state.sent[path] = sent
            done.set()

    def _trickle(self, data: bytes) -> None:
        self.wfile.flush()
        try:
            for i in range(len(data)):
                self.connection.sendall(data[i : i + 1])
                time.sleep(0.05)
        except OSError:
            pass


def _serve(certfile: Path | None = None) -> Iterator[Server]:
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # failed TLS handshakes are expected
    if certfile is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile)
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    state = Server(server.server_address[1], "https" if certfile else "http")
    handler.state = state
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def srv() -> Iterator[Server]:
    yield from _serve()


@pytest.fixture(scope="module")
def other() -> Iterator[Server]:
    """A second server, for redirects that must never reach it."""
    yield from _serve()


def _self_signed(directory: Path, name: str) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


# --- what is refused before any connection -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/file",
        "gopher://example.com:70/_stats",
        "dict://example.com:11211/stat",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "http:///no-host",
        "http://user:secret@example.com/",
        "http://example.com:0/",
        "http://example.com:70000/",
        "http://example.com:port/",
        "http://[::1/",
        "http://[fe80::1%25eth0]/",
        "http://example.com/" + "a" * 4096,
    ],
)
def test_syntax_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_syntax(url)


def test_syntax_parts() -> None:
    assert check_syntax("HTTPS://Example.COM/a?b#c") == ("https", "example.com", 443)
    assert check_syntax("http://[::1]:8080/") == ("http", "::1", 8080)
    assert check_syntax("http://münchen.de/") == ("http", "xn--mnchen-3ya.de", 80)


def _refused(url: str, policy: Policy = LOCAL) -> str:
    _, host, port = check_syntax(url)
    with pytest.raises(UnsafeURL) as info:
        resolve_public(host, port, policy)
    return str(info.value)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0x7f.1",
        "017700000001",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "100.64.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "240.0.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "192.0.2.1",
        "198.18.0.1",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[fd12:3456::1]",
        "[fec0::1]",
        "[ff02::1]",
        "[ff0e::1]",
        "[64:ff9b::a9fe:a9fe]",
        "[64:ff9b:1::a00:1]",
        "[2002:a9fe:a9fe::]",
        "[2001::1]",
        "[2001:db8::1]",
        "[::7f00:1]",
    ],
)
def test_non_public_addresses_refused(host: str) -> None:
    assert "private or reserved" in _refused(f"http://{host}/latest/meta-data/")


def test_refusal_does_not_leak_the_address() -> None:
    assert "127.0.0.1" not in _refused("http://2130706433/")


@pytest.mark.parametrize("host", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_literals_pass(host: str) -> None:
    assert resolve_public(host, 80, NOBODY) == [host]


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "127.0.0.1", "[::ffff:127.0.0.1]"])
def test_encoded_loopback_refused_before_contact(srv: Server, host: str) -> None:
    before = len(srv.hits)
    with pytest.raises(UnsafeURL):
        fetch_hash(f"http://{host}:{srv.port}/ok", policy=LOCAL, timeout=5)
    assert len(srv.hits) == before


def test_unresolvable_host_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(UnsafeURL, match="could not be resolved"):
        fetch_hash("http://nonexistent.invalid/file.png", policy=LOCAL, timeout=5)
    assert time.monotonic() - started < 5


# --- policy ----------------------------------------------------------------------------------------


def test_policy_parse() -> None:
    policy = Policy.parse(" localhost, 10.0.0.0/8 , ,Sim.Internal,192.168.1.5,fd00::/8,[::1]")
    assert policy.allow_hosts == frozenset({"localhost", "sim.internal"})
    assert [str(n) for n in policy.allow_nets] == ["10.0.0.0/8", "192.168.1.5/32", "fd00::/8", "::1/128"]
    assert Policy.parse("") == Policy(frozenset(), ())


@pytest.mark.parametrize("spec", ["http://localhost", "10.0.0.0/33", "bad host", "local_host/8", "-x.com"])
def test_policy_parse_rejects_bad_entries(spec: str) -> None:
    with pytest.raises(ValueError):
        Policy.parse(f"localhost,{spec}")


def test_get_policy_is_cached_from_settings() -> None:
    assert isinstance(get_policy(), Policy) and get_policy() is get_policy()


def test_allowed_name_is_case_insensitive(srv: Server) -> None:
    assert fetch_hash(f"http://LocalHost:{srv.port}/ok", policy=LOCAL, timeout=5).size == len(OK_BODY)


def test_allowed_name_is_not_allowed_by_default(srv: Server) -> None:
    with pytest.raises(UnsafeURL):
        fetch_hash(f"{srv.url}/ok", policy=NOBODY, timeout=5)


def test_cidr_entry_allows_addresses_inside(srv: Server) -> None:
    loopback = Policy.parse("127.0.0.0/8")
    assert fetch_hash(f"http://127.1:{srv.port}/ok", policy=loopback, timeout=5).size == len(OK_BODY)
    assert resolve_public("::ffff:127.0.0.1", 80, loopback) == ["::ffff:127.0.0.1"]
    _refused("http://10.0.0.1/", loopback)
    _refused("http://[::1]/", loopback)


def test_check_url_async(srv: Server) -> None:
    assert asyncio.run(check_url(f"{srv.url}/ok", LOCAL)) is None
    assert asyncio.run(check_url("https://8.8.8.8/x.png", NOBODY)) is None
    for url in ("http://127.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/", "ftp://localhost/"):
        with pytest.raises(UnsafeURL):
            asyncio.run(check_url(url, LOCAL))
    with pytest.raises(UnsafeURL, match="could not be resolved"):
        asyncio.run(check_url("http://nonexistent.invalid/", LOCAL, timeout=3))


# --- fetching --------------------------------------------------------------------------------------


def test_fetch_hash(srv: Server) -> None:
    fetched = fetch_hash(f"{srv.url}/ok", policy=LOCAL, timeout=5)
    assert fetched == Fetched(hashlib.sha256(OK_BODY).hexdigest(), len(OK_BODY), "image/png")


def test_request_goes_to_the_checked_address_with_the_real_host(srv: Server) -> None:
    dialled: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: dialled.append(r.url.host)]}) as client:
        with open_url(f"{srv.url}/host", policy=LOCAL, timeout=5, client=client) as response:
            assert response.read() == f"localhost:{srv.port}".encode()
    assert dialled == ["127.0.0.1"]


def test_http_error_status(srv: Server) -> None:
    with pytest.raises(FetchError) as info:
        fetch_hash(f"{srv.url}/status/404", policy=LOCAL, timeout=5)
    assert info.value.status == 404 and not isinstance(info.value, TooLarge)


def test_connection_refused_is_fetch_error() -> None:
    with pytest.raises(FetchError) as info:
        fetch_hash("http://localhost:1/x", policy=LOCAL, timeout=5)
    assert info.value.status is None


def test_redirect_to_metadata_refused(srv: Server) -> None:
    with pytest.raises(UnsafeURL, match="redirect refused"):
        fetch_hash(f"{srv.url}/to?url=http://169.254.169.254/latest/meta-data/", policy=LOCAL, timeout=5)


def test_redirect_target_never_contacted(srv: Server, other: Server) -> None:
    for target in (f"http://127.0.0.1:{other.port}/ok", f"http://2130706433:{other.port}/ok", "gopher://localhost/"):
        with pytest.raises(UnsafeURL, match="redirect refused"):
            fetch_hash(f"{srv.url}/to?url={urllib.parse.quote(target)}", policy=LOCAL, timeout=5)
    assert other.hits == []
    # The same redirect to an allowed name is followed.
    fetched = fetch_hash(f"{srv.url}/to?url={urllib.parse.quote(other.url + '/ok')}", policy=LOCAL, timeout=5)
    assert fetched.size == len(OK_BODY) and other.hits == ["/ok"]


def test_redirect_chain_bounded(srv: Server) -> None:
    assert fetch_hash(f"{srv.url}/chain/3", policy=LOCAL, timeout=5).size == len(b"end of chain")
    with open_url(f"{srv.url}/chain/2", policy=LOCAL, timeout=5, max_redirects=2) as response:
        assert response.read() == b"end of chain"
    with pytest.raises(FetchError, match="too many redirects") as info:
        with open_url(f"{srv.url}/chain/3", policy=LOCAL, timeout=5, max_redirects=2):
            pass
    assert info.value.status == 302
    with pytest.raises(FetchError, match="redirects are not followed"):
        with open_url(f"{srv.url}/chain/1", policy=LOCAL, timeout=5, max_redirects=0):
            pass


@pytest.mark.parametrize("path", ["/big", "/big-unsized"])
def test_oversized_body_stops_early(srv: Server, path: str) -> None:
    with pytest.raises(TooLarge):
        fetch_hash(f"{srv.url}{path}", policy=LOCAL, max_bytes=100_000, timeout=10)
    assert srv.done[path].wait(10)
    assert srv.sent[path] < BIG // 2  # we hung up long before the server was done


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-headers", "/stall"])
def test_total_timeout(srv: Server, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch_hash(f"{srv.url}{path}", policy=LOCAL, timeout=0.6)
    assert time.monotonic() - started < 1.6


def test_post_is_sent_and_not_redirected(srv: Server) -> None:
    signed = {"X-Signature": "v1,abc"}
    hook = f"{srv.url}/hook"
    with open_url(hook, policy=LOCAL, method="POST", content=b'{"ok":1}', headers=signed, timeout=5) as response:
        assert response.status_code == 200 and response.read() == b"v1,abc"
    assert srv.posts[-1] == b'{"ok":1}'
    posts = len(srv.posts)
    with pytest.raises(FetchError) as info:
        with open_url(f"{srv.url}/hook-redirect", policy=LOCAL, method="POST", content=b"x", timeout=5):
            pass
    assert info.value.status == 307 and len(srv.posts) == posts


# --- TLS: the address is dialled, the certificate is checked against the host name ---------------


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


def test_https_verifies_the_host_name(tls_dir: Path) -> None:
    good, wrong = _self_signed(tls_dir, "localhost"), _self_signed(tls_dir, "other.test")
    for certfile, ok in ((good, True), (wrong, False)):
        servers = _serve(certfile)
        server = next(servers)
        trust = ssl.create_default_context(cafile=str(certfile))
        try:
            with httpx.Client(verify=trust) as client:
                if ok:
                    with open_url(f"{server.url}/host", policy=LOCAL, timeout=5, client=client) as response:
                        assert response.read() == f"localhost:{server.port}".encode()
                else:
                    with pytest.raises(FetchError):
                        with open_url(f"{server.url}/host", policy=LOCAL, timeout=5, client=client):
                            pass
        finally:
            servers.close()
