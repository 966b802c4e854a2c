"""Sealing of users' own provider keys (BYOK): Fernet with the server's secret.

A sealed key is what travels from the API to the workers through Redis; the plain key exists only in
the memory of the request that brought it and of the worker call that uses it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from gengate.config.settings import get_settings


class SealError(Exception):
    pass


def _server_secret() -> bytes:
    s = get_settings()
    if s.secret_key is not None:
        return s.secret_key.get_secret_value().encode()
    path = Path(s.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret.{os.getpid()}.tmp")
        tmp.write_text(secrets.token_urlsafe(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic create-if-absent: processes starting together agree on one secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(_server_secret()).digest()))


def seal(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def unseal(token: str | bytes) -> str:
    try:
        return _fernet().decrypt(token if isinstance(token, bytes) else token.encode()).decode()
    except InvalidToken as exc:
        raise SealError("sealed provider key cannot be opened with this server's secret") from exc


def job_token(job_id: str) -> str:
    """A per-job capability for provider webhook URLs: only a URL we gave a provider for this job
    carries it, so a forged callback cannot even make us poll early."""
    return hmac.new(hashlib.sha256(b"provider-webhook:" + _server_secret()).digest(), job_id.encode(),
                    hashlib.sha256).hexdigest()[:40]
