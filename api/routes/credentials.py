"""The account's own credentials, managed with one of its keys (gengate additions; the reference
gateway keeps these in its dashboard, whose API it does not publish):

- `/v1/keys`: list, create (the key is in that one answer and never again: only its sha256 is
  kept), revoke. An account never revokes its last active key (409: create another first), so a
  click cannot lock it out; and holds at most `GENGATE_ACCOUNT_MAX_KEYS` active keys.
- `/v1/webhook-secret`: rotate the Standard Webhooks signing secret, shown once; the old one stops
  verifying at once.
- `/v1/provider-keys`: the account's saved provider keys (BYOK without a header): set, replace,
  delete. Sealed at rest as header keys are; listed as saved or not, never shown back.

Any of the account's keys may do all of this: keys are not scoped. Answers carrying a secret are
`Cache-Control: no-store`.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import ORJSONResponse, Response
from pydantic import BaseModel, Field

from gengate.api.deps import PrincipalDep, RedisDep, SettingsDep
from gengate.api.provider_keys import HEADERS, MAX_KEY_LENGTH, SAVED_AT, saved_key_fields
from gengate.api.schemas import error_responses
from gengate.config.catalog import PROVIDERS
from gengate.jobs import keys
from gengate.jobs.apikeys import create_own_key, own_keys, revoke_own_key
from gengate.jobs.errors import ConflictError, NotFoundError, ValidationError
from gengate.jobs.sealing import seal
from gengate.jobs.webhooks import new_secret

router = APIRouter(prefix="/v1", tags=["Account"])
NO_STORE = {"Cache-Control": "no-store"}
KEY_PATTERN = re.compile(r"^[ -~]*[!-~][ -~]*$")  # printable ASCII, not only spaces  # field suffix in the provider-keys hash: when a provider's key was saved


class ApiKeyInfo(BaseModel):
    key_id: str
    created_at: str
    revoked: bool
    revoked_at: str | None = Field(description="When it was revoked; null while active")
    current: bool = Field(description="True for the key this request was made with")


class ApiKeyList(BaseModel):
    keys: list[ApiKeyInfo]


class CreatedApiKey(BaseModel):
    key_id: str
    key: str = Field(description="The whole key. Shown in this answer only: gengate keeps its hash, not the key")
    created_at: str


class WebhookSecret(BaseModel):
    secret: str = Field(description="The new signing secret (whsec_...). Shown in this answer only")


class ProviderKeyInfo(BaseModel):
    provider: str
    header: str = Field(description="The request header that overrides the saved key for one request")
    saved: bool
    saved_at: str | None = Field(description="When the saved key was set; null when none is saved")


class ProviderKeyList(BaseModel):
    provider_keys: list[ProviderKeyInfo]


class ProviderKeyBody(BaseModel):
    # It travels to the provider in an HTTP header: visible ASCII (and spaces between), never a line
    # break that could split the header. Declared as the schema's pattern, so clients see the rule.
    key: str = Field(min_length=1, max_length=MAX_KEY_LENGTH, json_schema_extra={"pattern": KEY_PATTERN.pattern},
                     description="The provider's API key: printable ASCII")


KeyId = Annotated[str, Path(max_length=32, pattern=r"^[A-Za-z0-9]+$")]
Provider = Annotated[str, Path(max_length=32, description=f"One of {', '.join(PROVIDERS)}")]


@router.get("/keys", response_model=ApiKeyList, responses=error_responses(401), operation_id="listApiKeys",
            summary="List the account's API keys")
async def list_api_keys(principal: PrincipalDep, redis: RedisDep):
    ring = await own_keys(redis, principal.account_id)
    return ORJSONResponse({"keys": [{**k, "current": k["key_id"] == principal.key_id} for k in ring]})


@router.post("/keys", status_code=201, response_model=CreatedApiKey, responses=error_responses(401, 409),
             operation_id="createApiKey", summary="Create an API key (shown once)")
async def create_api_key(principal: PrincipalDep, redis: RedisDep, settings: SettingsDep):
    made = await create_own_key(redis, principal.account_id, settings.account_max_keys)
    if made is None:
        raise ConflictError(f"The account already has {settings.account_max_keys} active keys: revoke one first",
                            field="keys")
    key_id, key, created_at = made
    return ORJSONResponse({"key_id": key_id, "key": key, "created_at": created_at}, status_code=201,
                          headers=NO_STORE)


@router.delete("/keys/{key_id}", status_code=204, responses=error_responses(400, 401, 404, 409),
               operation_id="revokeApiKey", summary="Revoke an API key")
async def revoke_api_key(principal: PrincipalDep, redis: RedisDep, key_id: KeyId):
    """From the next request on, the key answers 401. Revoking the key this request uses is allowed
    while the account has another active one."""
    outcome = await revoke_own_key(redis, principal.account_id, key_id)
    if outcome == 0:
        raise NotFoundError(f"No key {key_id} on this account", field="key_id")
    if outcome == -1:
        raise ConflictError("This is the account's last active key: create another before revoking it",
                            field="key_id")
    return Response(status_code=204)  # revoked now, or already (2): the same end state


@router.post("/webhook-secret", response_model=WebhookSecret, responses=error_responses(401),
             operation_id="rotateWebhookSecret", summary="Rotate the webhook signing secret (shown once)")
async def rotate_webhook_secret(principal: PrincipalDep, redis: RedisDep):
    """Deliveries from now on are signed with the new secret; the previous one no longer verifies."""
    plain = new_secret()
    await redis.set(keys.account_webhook_secret(principal.account_id), seal(plain))
    return ORJSONResponse({"secret": plain}, headers=NO_STORE)


def _provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise NotFoundError(f"No provider {provider!r}; one of {', '.join(PROVIDERS)}", field="provider")
    return provider


@router.get("/provider-keys", response_model=ProviderKeyList, responses=error_responses(401),
            operation_id="listProviderKeys", summary="Which provider keys the account saved")
async def list_provider_keys(principal: PrincipalDep, redis: RedisDep):
    saved = {k.decode(): v.decode() for k, v in
             (await redis.hgetall(keys.account_provider_keys(principal.account_id))).items()}
    return ORJSONResponse({"provider_keys": [
        {"provider": p, "header": HEADERS[p], "saved": p in saved, "saved_at": saved.get(p + SAVED_AT)}
        for p in PROVIDERS]})


@router.put("/provider-keys/{provider}", status_code=204, responses=error_responses(400, 401, 404),
            operation_id="saveProviderKey", summary="Save or replace a provider key")
async def save_provider_key(principal: PrincipalDep, redis: RedisDep, provider: Provider, body: ProviderKeyBody):
    """Jobs of this account on `provider` use this key when their request sends no
    `X-Provider-Key-*` header: they are BYOK, and cost nothing here."""
    _provider(provider)
    if not KEY_PATTERN.fullmatch(body.key):  # the schema's pattern, checked here to say it in words
        raise ValidationError("key must be printable ASCII, without line breaks", field="key", provider=provider)
    plain = body.key.strip()
    await redis.hset(keys.account_provider_keys(principal.account_id),
                     mapping=saved_key_fields(provider, plain))
    return Response(status_code=204)


@router.delete("/provider-keys/{provider}", status_code=204, responses=error_responses(400, 401, 404),
               operation_id="deleteProviderKey", summary="Delete a saved provider key")
async def delete_provider_key(principal: PrincipalDep, redis: RedisDep, provider: Provider):
    _provider(provider)
    removed = await redis.hdel(keys.account_provider_keys(principal.account_id), provider, provider + SAVED_AT)
    if not removed:
        raise NotFoundError(f"No saved {provider} key", field="provider", provider=provider)
    return Response(status_code=204)
