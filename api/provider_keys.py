"""Which provider key a job uses (BYOK): the request's `X-Provider-Key-*` header, else the key the
account saved, else the server's pooled key; no key anywhere is the client's problem (400).

The user's key leaves here only sealed; the job record says no more than `byok: true`.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from gengate.config.settings import Settings
from gengate.jobs.errors import ValidationError
from gengate.jobs.record import utcnow_iso
from gengate.jobs.sealing import seal

HEADERS = {
    "fal": "X-Provider-Key-Fal",
    "elevenlabs": "X-Provider-Key-ElevenLabs",
    "higgsfield": "X-Provider-Key-Higgsfield",
    "replicate": "X-Provider-Key-Replicate",
    "piapi": "X-Provider-Key-PiAPI",
}
MAX_KEY_LENGTH = 1024
SAVED_AT = ":saved_at"  # field suffix in the account's provider-keys hash: when that provider's key was saved


def saved_key_fields(provider: str, plain: str) -> dict[str, str]:
    """The account's provider-keys hash fields that save `plain` for `provider`: the sealed key and
    when it was saved (`PUT /v1/provider-keys/{provider}` and `gengate keys save-provider` alike)."""
    return {provider: seal(plain), provider + SAVED_AT: utcnow_iso()}


def from_header(provider: str, headers: Headers) -> str | None:
    """The user's own key for `provider` from its request header, sealed; None without the header."""
    header = HEADERS[provider]
    plain = headers.get(header)
    if plain is None:
        return None
    plain = plain.strip()
    if not plain or len(plain) > MAX_KEY_LENGTH:
        raise ValidationError(f"{header} is empty or too long", field=header, provider=provider)
    return seal(plain)


def saved_or_pooled(provider: str, saved: bytes | None, settings: Settings) -> str | None:
    """Without a header: the account's saved key (sealed), else None for the server's pooled key,
    else a 400 saying how to give one."""
    if saved:
        return saved.decode()
    if getattr(settings, provider).api_key is not None:
        return None
    header = HEADERS[provider]
    raise ValidationError(
        f"No API key for provider '{provider}': send {header}, save one with `gengate keys save-provider`, "
        f"or configure GENGATE_{provider.upper()}__API_KEY on the server",
        field=header, provider=provider,
    )
