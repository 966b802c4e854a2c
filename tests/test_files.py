"""POST /v1/files against the real API: streamed, counted and hashed uploads, per-account
deduplication, the 50 MiB limit (without the server holding the body), and the stable `/u/` URLs."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from gengate.jobs import keys
from gengate.sim import media
from gengate.storage.sniff import sniff_media_type
from tests.conftest import new_key

MiB = 1024 * 1024
LIMIT = 50 * MiB


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _png() -> bytes:
    return media.png_bytes(48, 32, seed=secrets.randbelow(1 << 30))


@pytest.fixture
def other(api_url: str, rds: redis.Redis) -> Iterator[httpx.Client]:
    """A second account."""
    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {new_key(rds)}"},
                      timeout=30) as c:
        yield c


def _error(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and body["statusCode"] == status and body["message"]
    if field is not None:
        assert body["field"] == field
    return body


def test_upload_answers_the_spec_shape_and_the_url_serves_the_bytes(client: httpx.Client, rds: redis.Redis):
    png = _png()
    r = client.post("/files", content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    up = r.json()
    assert set(up) == {"file_id", "url", "hash", "size", "media_type", "deduplicated"}
    assert re.fullmatch(r"file_[0-9a-f]{32}", up["file_id"])
    assert up["url"].endswith(f"/u/{up['file_id']}.png")
    assert up["hash"] == f"sha256:{_sha(png)}" and up["size"] == len(png)
    assert up["media_type"] == "image/png" and up["deduplicated"] is False

    got = httpx.get(up["url"])
    assert got.status_code == 200 and got.content == png
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert httpx.head(up["url"]).status_code == 200

    # The records the result cache resolves our own URLs with: plain strings, per account.
    record = {k.decode(): v.decode() for k, v in rds.hgetall(keys.file(up["file_id"])).items()}
    assert record["sha256"] == _sha(png) and record["size"] == str(len(png))
    assert record["media_type"] == "image/png" and record["name"] == f"{up['file_id']}.png"
    assert record["created_at"].endswith("Z")
    assert rds.hget(keys.account_files(record["account"]), _sha(png)).decode() == up["file_id"]

    meta = client.get(f"/files/{up['file_id']}")
    assert meta.status_code == 200 and meta.json() == up


def test_content_hash_header_returns_the_accounts_file_without_the_body(client: httpx.Client):
    png = _png()
    first = client.post("/files", content=png).json()
    header = {"X-Content-Hash": f"sha256:{_sha(png)}"}
    for body in (b"", b"not the file at all"):
        r = client.post("/files", content=body, headers=header)
        assert r.status_code == 200, r.text
        assert r.json() == {**first, "deduplicated": True}
    upper = client.post("/files", content=b"", headers={"X-Content-Hash": f"sha256:{_sha(png).upper()}"})
    assert upper.json()["file_id"] == first["file_id"]
    # The same bytes again without the header: hashed while stored, so found as well.
    again = client.post("/files", content=png)
    assert again.status_code == 200 and again.json() == {**first, "deduplicated": True}


def test_deduplication_never_crosses_accounts(client: httpx.Client, other: httpx.Client):
    png = _png()
    mine = client.post("/files", content=png).json()
    header = {"X-Content-Hash": f"sha256:{_sha(png)}"}
    # Knowing the hash is not enough for another tenant: it has to send the bytes.
    _error(other.post("/files", content=b"", headers=header), 400, "ValidationError", "body")
    _error(other.post("/files", content=b"garbage", headers=header), 400, "ValidationError", "X-Content-Hash")
    r = other.post("/files", content=png, headers=header)
    assert r.status_code == 200, r.text
    theirs = r.json()
    assert theirs["deduplicated"] is False and theirs["file_id"] != mine["file_id"]
    assert theirs["hash"] == mine["hash"] and httpx.get(theirs["url"]).content == png
    _error(other.get(f"/files/{mine['file_id']}"), 404, "NotFoundError")
    assert client.get(f"/files/{mine['file_id']}").status_code == 200


def test_concurrent_identical_uploads_of_one_account_end_as_one_file(client: httpx.Client, rds: redis.Redis):
    png = _png()
    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(client.post("/files", content=png).json()))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a["file_id"] for a in answers}) == 1, answers
    assert sum(not a["deduplicated"] for a in answers) == 1
    account = rds.hget(keys.file(answers[0]["file_id"]), "account").decode()
    assert rds.hget(keys.account_files(account), _sha(png)).decode() == answers[0]["file_id"]
    # The racers that lost dropped their own records (and names).
    same = [k for k in rds.scan_iter(match=keys.FILE.format("*"), count=1000)
            if rds.type(k) == b"hash" and rds.hget(k, "sha256") == _sha(png).encode()]
    assert same == [keys.file(answers[0]["file_id"]).encode()]


def test_a_wrong_or_malformed_hash_is_refused_and_nothing_is_kept(client: httpx.Client, rds: redis.Redis):
    png = _png()
    before = _file_records(rds)
    wrong = {"X-Content-Hash": "sha256:" + "0" * 64}
    body = _error(client.post("/files", content=png, headers=wrong), 400, "ValidationError", "X-Content-Hash")
    assert _sha(png) in body["message"]
    # The bare hex is a spelling of the hash too, and is held to the body just the same.
    body = _error(client.post("/files", content=png, headers={"X-Content-Hash": "0" * 64}), 400, "ValidationError",
                  "X-Content-Hash")
    assert _sha(png) in body["message"]
    sha = _sha(png)
    for bad in ("md5:abc", "sha256:xyz", "sha256:" + "a" * 63, "a" * 63, sha + "0", "sha256:" + sha + "0",
                "sha256:sha256:" + sha, "sha1:" + sha, "sha256 " + sha, "sha256=" + sha, sha[:32] + " " + sha[32:],
                "g" * 64, "0x" + sha[2:], "null"):
        _error(client.post("/files", content=png, headers={"X-Content-Hash": bad}), 400, "ValidationError",
               "X-Content-Hash")
    assert _file_records(rds) == before


@pytest.mark.parametrize("first, then", [("prefixed", "bare"), ("bare", "prefixed"), ("bare", "bare upper")])
def test_the_bare_hex_hash_dedupes_like_the_prefixed_one(client: httpx.Client, first: str, then: str):
    """`X-Content-Hash: <hex>` and `X-Content-Hash: sha256:<hex>` name the same content: an upload made
    with either spelling is found with the other, without its body."""
    png = _png()
    spell = {"prefixed": f"sha256:{_sha(png)}", "bare": _sha(png), "bare upper": _sha(png).upper()}
    stored = client.post("/files", content=png, headers={"X-Content-Hash": spell[first]})
    assert stored.status_code == 200, stored.text
    assert stored.json()["deduplicated"] is False and stored.json()["hash"] == f"sha256:{_sha(png)}"
    for body in (b"", png):
        again = client.post("/files", content=body, headers={"X-Content-Hash": spell[then]})
        assert again.status_code == 200, again.text
        assert again.json() == {**stored.json(), "deduplicated": True}


def test_the_openapi_document_declares_both_hash_spellings(api_url: str):
    param = next(p for p in httpx.get(f"{api_url}/openapi.json").json()["paths"]["/v1/files"]["post"]["parameters"]
                 if p["name"] == "X-Content-Hash")
    pattern = re.compile(param["schema"]["pattern"])
    sha = "ab" * 32
    assert pattern.search(sha) and pattern.search(f"sha256:{sha}") and pattern.search(sha.upper())
    assert not pattern.search(f"md5:{sha}") and not pattern.search(sha[:-1]) and not pattern.search(sha + "a")


def test_empty_body_and_missing_key_are_refused(client: httpx.Client, api_url: str):
    _error(client.post("/files", content=b""), 400, "ValidationError", "body")
    _error(httpx.post(f"{api_url}/v1/files", content=b"x"), 401, "AuthError")


@pytest.mark.parametrize("body, content_type, media_type, ext", [
    (media.png_bytes(8, 8, seed=11), None, "image/png", ".png"),
    (media.png_bytes(8, 8, seed=12), "application/octet-stream", "image/png", ".png"),
    (media.wav_bytes(0.2), None, "audio/wav", ".wav"),
    (media.mp3_bytes(0.5), None, "audio/mpeg", ".mp3"),
    (media.mp4_bytes(32, 32, 0.5), None, "video/mp4", ".mp4"),
    (b"%just some bytes%" * 10, None, "application/octet-stream", ".bin"),
    (b"declared, not sniffed", "image/jpeg; charset=binary", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n but said to be text", "Text/Plain", "text/plain", ".txt"),
])
def test_media_type_is_the_declared_one_else_sniffed(client: httpx.Client, body, content_type, media_type, ext):
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/files", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["media_type"] == media_type and r.json()["url"].endswith(ext)
    assert httpx.get(r.json()["url"]).content == body


def test_sniffing_recognises_the_common_signatures():
    cases = {
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR": "image/png",
        b"\xff\xd8\xff\xe0\0\x10JFIF": "image/jpeg",
        b"GIF89a\x01\0\x01\0": "image/gif",
        b"RIFF\x24\0\0\0WEBPVP8 ": "image/webp",
        b"RIFF\x24\0\0\0WAVEfmt ": "audio/wav",
        b"\0\0\0\x18ftypisom\0\0\0\0": "video/mp4",
        b"\0\0\0\x14ftypqt  \0\0\0\0": "video/quicktime",
        b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm": "video/webm",
        b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska": "video/x-matroska",
        b"OggS\0\x02": "audio/ogg",
        b"fLaC\0\0\0\x22": "audio/flac",
        b"ID3\x04\0\0": "audio/mpeg",
        b"\xff\xfb\x90\x64": "audio/mpeg",
        b"%PDF-1.7": "application/octet-stream",
        b"": "application/octet-stream",
    }
    for head, expected in cases.items():
        assert sniff_media_type(head) == expected, head


def _zeros(total: int, chunk: int = MiB) -> Iterator[bytes]:
    block = b"\0" * chunk
    while total > 0:
        yield block[:min(chunk, total)]
        total -= chunk


def test_over_50mib_streamed_is_refused_without_holding_it(client: httpx.Client, rds: redis.Redis,
                                                          data_dir: Path, api_url: str):
    pid = _api_pid(api_url)
    storage = data_dir / "storage"
    blobs, records = _blobs(storage), _file_records(rds)
    base_rss = _status_kb(pid, "VmRSS")
    _reset_peak_rss(pid)
    with _RssSampler(pid) as sampler:
        # A generator body: chunked transfer, no Content-Length to refuse it by.
        r = client.post("/files", content=_zeros(LIMIT + 1), timeout=120)
    body = _error(r, 413, "PayloadTooLargeError")
    assert set(body) == {"error", "message", "statusCode"} and "50MB" in body["message"]
    assert _blobs(storage) == blobs and _file_records(rds) == records
    assert not [p for p in (storage / "tmp").iterdir() if p.name.startswith("upload-")]
    grown_mb = (max(sampler.peak_kb, _status_kb(pid, "VmHWM")) - base_rss) / 1024
    assert grown_mb < 20, f"the API grew by {grown_mb:.0f} MB while refusing a 50 MB upload"


def test_exactly_50mib_is_accepted(client: httpx.Client):
    r = client.post("/files", content=_zeros(LIMIT, chunk=4 * MiB), timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["size"] == LIMIT and r.json()["media_type"] == "application/octet-stream"


def test_a_content_length_over_the_limit_is_refused_before_any_body(client: httpx.Client, api_url: str):
    """Headers only, never a body byte: the answer must come at once, not after a read."""
    host, port = urlsplit(api_url).hostname, urlsplit(api_url).port
    request = (f"POST /v1/files HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: {client.headers['Authorization']}\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Length: {LIMIT + 1}\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert time.monotonic() - started < 3
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer
    assert b'"error":"PayloadTooLargeError"' in payload and b'"statusCode":413' in payload


def test_unknown_files_and_names_are_not_found(client: httpx.Client, api_url: str):
    for name in ("file_" + "0" * 32 + ".png", "nothing.png", "..%2F..%2Fetc%2Fpasswd", "a.b.c"):
        _error(httpx.get(f"{api_url}/u/{name}"), 404, "NotFoundError")
    for file_id in ("file_" + "0" * 32, "file_x", "job_" + "0" * 32):
        _error(client.get(f"/files/{file_id}"), 404, "NotFoundError")


# --- helpers -------------------------------------------------------------------------------


def _file_records(rds: redis.Redis) -> int:
    return sum(1 for k in rds.scan_iter(match=keys.FILE.format("*"), count=1000) if k.count(b":") == 2)


def _blobs(storage: Path) -> set[str]:
    return {p.name for p in (storage / "objects").rglob("*") if p.is_file()}


def _api_pid(api_url: str) -> int:
    """The uvicorn process serving `api_url` (found by its command line's --port)."""
    port = str(urlsplit(api_url).port).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"uvicorn" in argv and b"--port" in argv and argv[argv.index(b"--port") + 1] == port:
            return int(proc.name)
    pytest.skip("the API process is not visible in /proc")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _reset_peak_rss(pid: int) -> None:
    """Make VmHWM start from now (Linux: writing 5 to clear_refs); harmless where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


class _RssSampler:
    """Samples the process's resident size every few milliseconds while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmRSS"))
            self._stop.wait(0.005)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

