"""What kind of file (image, video or audio) each input URL names, before the mode is chosen.

Signed and CDN URLs often have no extension, so the extension is only the first answer: a URL without
a known one is this gateway's own file (its upload record's media type), or else is asked through the
safe fetcher (storage/fetch.py: public addresses only) for its Content-Type, and failing that its
first bytes. A file whose kind cannot be told is a 400 naming it: guessing would pick the wrong mode.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gengate.config.catalog import file_kind
from gengate.jobs import cache
from gengate.jobs.errors import ValidationError
from gengate.storage.fetch import FetchError, UnsafeURL, open_url
from gengate.storage.sniff import HEAD_BYTES, OCTET_STREAM, sniff_media_type

# Enough to learn the Content-Type and the leading bytes; the worker fetches the file itself later.
PROBE_TIMEOUT_SECONDS = 5.0


def kind_of_media_type(media_type: str | None) -> str:
    major = (media_type or "").split(";", 1)[0].strip().lower().split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "unknown"


def probe(url: str) -> str:
    """The kind a user URL's answer announces: its Content-Type, else its first bytes."""
    with open_url(url, timeout=PROBE_TIMEOUT_SECONDS) as response:
        if not response.is_success:
            raise FetchError(f"the server answered HTTP {response.status_code}", status=response.status_code)
        kind = kind_of_media_type(response.headers.get("content-type"))
        if kind != "unknown":
            return kind
        head = b""
        for chunk in response.iter_bytes():
            head += chunk
            if len(head) >= HEAD_BYTES:
                break
    sniffed = sniff_media_type(head[:HEAD_BYTES])
    return kind_of_media_type(sniffed) if sniffed != OCTET_STREAM else "unknown"


async def file_kinds(urls: list[str], redis: Any, base_public_url: str | tuple[str, ...]) -> list[str]:
    """The kind of each URL, in order; refuses (400 on `files`) one that cannot be told."""
    kinds = [file_kind(url) for url in urls]
    for i, url in enumerate(urls):
        if kinds[i] != "unknown":
            continue
        own = cache.own_name(url, base_public_url)
        if own is not None:
            kind, name = own
            record = cache.own_media_type_lookup(kind, name)
            raw = await redis.hget(*record) if record is not None else None
            kinds[i] = kind_of_media_type(raw.decode() if raw else None)
        else:
            try:
                kinds[i] = await asyncio.to_thread(probe, url)
            except UnsafeURL as exc:
                raise ValidationError(f"files.{i}.url: {exc}", field="files") from None
            except FetchError as exc:
                raise ValidationError(f"files.{i}.url could not be read to tell what it is: {exc}",
                                      field="files") from None
        if kinds[i] == "unknown":
            raise ValidationError(f"files.{i}.url: cannot tell whether it is an image, a video or an audio file "
                                  "(no known extension, Content-Type or signature)", field="files")
    return kinds
