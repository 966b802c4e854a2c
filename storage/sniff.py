"""What a file is, from its first bytes: for uploads sent without a useful Content-Type."""

from __future__ import annotations

# Enough for every signature below (the WebM doctype sits inside the EBML header, ~40 bytes in).
HEAD_BYTES = 64

OCTET_STREAM = "application/octet-stream"


def sniff_media_type(head: bytes) -> str:
    """The media type the leading bytes announce, else application/octet-stream."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or WebM when its doctype says so
        return "video/webm" if b"webm" in head[:HEAD_BYTES] else "video/x-matroska"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"  # ID3 tag, or an MPEG audio frame sync (11 set bits)
    return OCTET_STREAM
