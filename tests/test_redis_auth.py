"""Managed Redis: a password or ACL user, and TLS (`rediss://`), for job state and the Celery broker
alike. The suite starts a redis-server that speaks TLS only and knows one ACL user (its default user
off), then runs the API and a worker against it through the settings alone, and a job completes."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gengate import procs
from gengate.config.settings import Settings
from gengate.jobs.apikeys import create_account, create_key

from tests.conftest import wait_for

PASSWORD = "s3cret:with@odd/chars"


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
          *, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer or (name, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(path: Path, obj) -> Path:  # type: ignore[no-untyped-def]
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A redis-server on TLS only, with the default user off and one ACL user `gengate`: its
    rediss:// URL (no credentials in it) and the CA file that signed its certificate."""
    root = tmp_path_factory.mktemp("tls-redis")
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("gengate test CA", ca_key, None, ca=True)
    ca_file = _pem(root / "ca.pem", ca)
    cert = _pem(root / "server.pem", _cert("localhost", server_key, (ca.subject, ca_key), ca=False))
    key = _pem(root / "server.key", server_key)
    port = procs.free_port()
    proc = subprocess.Popen([
        procs.redis_server_binary(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca_file),
        "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(root),
        "--user", "default", "off", "--user", "gengate", "on", f">{PASSWORD}", "~*", "&*", "+@all",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://localhost:{port}/0"
    options = {"username": "gengate", "password": PASSWORD, "ssl_ca_certs": str(ca_file)}
    procs.wait_until(lambda: procs.redis_answers(url, **options), 10, "redis-server with TLS", proc)
    yield url, ca_file
    proc.terminate()
    proc.wait(10)


def test_settings_turn_credentials_and_tls_into_client_and_broker_options(tls_redis):
    url, ca_file = tls_redis
    s = Settings(redis_url=url, redis_username="gengate", redis_password=PASSWORD, redis_tls_ca_file=ca_file)
    # the broker URL carries the credentials (kombu reads them only there), quoted
    assert s.broker_url().startswith("rediss://gengate:s3cret%3Awith%40odd%2Fchars@localhost:")
    assert s.broker_ssl()["ssl_ca_certs"] == str(ca_file)
    assert redis.Redis.from_url(s.resolved_redis_url(), **s.redis_options()).ping()
    # without them, the server refuses: no TLS, no user, or a wrong password
    assert not procs.redis_answers(url.replace("rediss://", "redis://"))
    assert not procs.redis_answers(url, ssl_ca_certs=str(ca_file))
    assert not procs.redis_answers(url, username="gengate", password="wrong", ssl_ca_certs=str(ca_file))
    # a URL's own credentials win over the settings'
    own = Settings(redis_url=url.replace("rediss://", "rediss://gengate:x@"), redis_password="ignored")
    assert own.broker_url() == own.resolved_redis_url()


def test_api_and_worker_run_a_job_over_tls_with_an_acl_user(tls_redis, env: dict[str, str], tmp_path: Path):
    """The API, a worker and the broker on TLS with an ACL user, configured by GENGATE_* settings
    only: a job is created, run and completed, and its output is served."""
    url, ca_file = tls_redis
    settings_env = {"GENGATE_REDIS_URL": url, "GENGATE_REDIS_USERNAME": "gengate", "GENGATE_REDIS_PASSWORD": PASSWORD,
                    "GENGATE_REDIS_TLS_CA_FILE": str(ca_file), "GENGATE_DATA_DIR": str(tmp_path)}
    port = procs.free_port()
    stack_env = {**env, **settings_env, "GENGATE_API_PORT": str(port), "GENGATE_WORKER_METRICS_PORT": "0"}
    r = redis.Redis.from_url(url, username="gengate", password=PASSWORD, ssl_ca_certs=str(ca_file))
    key = create_key(r, create_account(r, email="tls@example.com", plan="dev"))
    api = procs.start(procs.api_command("127.0.0.1", port), stack_env, tmp_path / "api.log")
    worker = procs.start(procs.worker_command(concurrency=2, hostname="tls@%h"), stack_env, tmp_path / "worker.log")
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{base}/healthz", 30, api)
        procs.wait_until(lambda: b"ready." in (tmp_path / "worker.log").read_bytes(), 30, "worker", worker)
        with httpx.Client(base_url=f"{base}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10) as c:
            job = c.post("/image", json={"model": "flux-schnell", "prompt": "over TLS"})
            assert job.status_code == 202, job.text
            done = wait_for(c, job.json()["job_id"], timeout=30)
        assert done["status"] == "completed", done
        assert httpx.get(done["output"]["url"]).status_code == 200
    finally:
        procs.stop(worker)
        procs.stop(api)
