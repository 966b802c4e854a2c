"""/v1/keys, /v1/webhook-secret, /v1/provider-keys (an account managing its own credentials) and
/v1/admin/overview (the operators' view), over HTTP against the real API, worker and simulators."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
import redis
from standardwebhooks import Webhook

from tests.conftest import ADMIN_KEY, new_key, sim_requests, wait_for, wait_until
from tests.test_webhooks import Receiver, receiver  # noqa: F401 (a fixture)


def _client(api_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10)


def _key(client: httpx.Client) -> str:
    return client.headers["Authorization"].split()[-1]


def _image(client: httpx.Client, **extra) -> tuple[str, str]:
    marker = uuid.uuid4().hex
    r = client.post("/image", json={"model": "flux-schnell", "prompt": f"creds {marker}", **extra})
    assert r.status_code == 202, r.text
    return r.json()["job_id"], marker


def test_keys_list_create_use_and_revoke(client: httpx.Client, api_url: str):
    [mine] = client.get("/keys").json()["keys"]
    assert mine["current"] is True and mine["revoked"] is False and "key" not in mine
    made = client.post("/keys")
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    new = made.json()
    assert new["key"].startswith(f"gg_live_{new['key_id']}_")
    with _client(api_url, new["key"]) as second:
        assert second.get("/me").json() == client.get("/me").json()  # the same account
        listed = {k["key_id"]: k for k in second.get("/keys").json()["keys"]}
        assert listed[new["key_id"]]["current"] and not listed[mine["key_id"]]["current"]
        assert new["key"] not in second.get("/keys").text  # never shown again
        assert client.delete(f"/keys/{new['key_id']}").status_code == 204
        assert second.get("/me").status_code == 401  # at once
    assert client.delete(f"/keys/{new['key_id']}").status_code == 204  # already revoked: the same end state
    revoked = {k["key_id"]: k for k in client.get("/keys").json()["keys"]}[new["key_id"]]
    assert revoked["revoked"] is True and revoked["revoked_at"]


def test_the_last_active_key_is_never_revoked(client: httpx.Client, api_url: str):
    mine = _key(client).split("_")[2]
    refused = client.delete(f"/keys/{mine}")
    assert refused.status_code == 409 and refused.json()["field"] == "key_id"
    # With another key active, the key in use may go, and the other one carries on.
    other = client.post("/keys").json()["key"]
    assert client.delete(f"/keys/{mine}").status_code == 204
    assert client.get("/me").status_code == 401
    with _client(api_url, other) as second:
        assert second.get("/me").status_code == 200


def test_two_concurrent_revokes_leave_one_key_active(client: httpx.Client, api_url: str):
    """Each request would see the other key still active; the check and the write are one script,
    so exactly one wins and the account is never locked out."""
    other = client.post("/keys").json()
    ids = [_key(client).split("_")[2], other["key_id"]]
    answers: list[int] = []
    with _client(api_url, other["key"]) as second:
        threads = [threading.Thread(target=lambda c, i: answers.append(c.delete(f"/keys/{i}").status_code),
                                    args=(c, i)) for c, i in ((client, ids[1]), (second, ids[0]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # The loser is refused as the last key's revoke (409), or, when the winner revoked its key
        # first, as a request made with a revoked key (401).
        assert answers.count(204) == 1 and set(answers) - {204} <= {401, 409}
        assert sorted(c.get("/me").status_code for c in (client, second)) == [200, 401]


def test_keys_of_another_account_are_not_found_and_the_count_is_capped(client: httpx.Client, rds: redis.Redis,
                                                                     api_url: str):
    stranger = new_key(rds).split("_")[2]
    gone = client.delete(f"/keys/{stranger}")
    assert gone.status_code == 404 and gone.json()["error"] == "NotFoundError"
    assert client.delete("/keys/not-an-id!").status_code == 400
    made = [client.post("/keys") for _ in range(25)]
    assert [r.status_code for r in made].count(201) == 19  # GENGATE_ACCOUNT_MAX_KEYS (20) with the first
    assert made[-1].status_code == 409 and made[-1].json()["error"] == "ConflictError"


def test_webhook_secret_rotation_signs_the_next_delivery(client: httpx.Client, receiver: Receiver):  # noqa: F811
    first = client.post("/webhook-secret")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    old = first.json()["secret"]
    new = client.post("/webhook-secret").json()["secret"]
    assert old.startswith("whsec_") and new.startswith("whsec_") and new != old
    url = receiver.url()
    job_id, _ = _image(client, webhook_url=url)
    assert wait_for(client, job_id)["status"] == "completed"
    [call] = wait_until(lambda: receiver.got(url), what="the webhook")
    assert Webhook(new).verify(call.body, call.headers)["job_id"] == job_id
    with pytest.raises(Exception):
        Webhook(old).verify(call.body, call.headers)


def test_saved_provider_key_is_set_replaced_used_and_deleted(client: httpx.Client, sim: httpx.Client):
    listed = client.get("/provider-keys").json()["provider_keys"]
    assert {p["provider"] for p in listed} == {"fal", "replicate", "elevenlabs", "higgsfield", "piapi"}
    assert not any(p["saved"] for p in listed)
    for key, suffix in (("first-saved-key-AAAA", "AAAA"), ("second-saved-key-BBBB", "BBBB")):
        assert client.put("/provider-keys/fal", json={"key": key}).status_code == 204
        fal = {p["provider"]: p for p in client.get("/provider-keys").json()["provider_keys"]}["fal"]
        assert fal["saved"] and fal["saved_at"] and fal["header"] == "X-Provider-Key-Fal"
        assert key not in client.get("/provider-keys").text  # never shown back
        job_id, marker = _image(client)
        assert wait_for(client, job_id)["status"] == "completed"
        assert sim_requests(sim, marker)[0]["key_suffix"] == suffix  # the provider saw the saved key
    assert client.delete("/provider-keys/fal").status_code == 204
    job_id, marker = _image(client)
    assert wait_for(client, job_id)["status"] == "completed"
    assert sim_requests(sim, marker)[0]["key_suffix"] == "pooled-fal-key"[-4:]  # the pooled key again
    assert client.delete("/provider-keys/fal").status_code == 404


@pytest.mark.parametrize(("provider", "body", "status", "field"), [
    ("fal", {"key": "two\nlines"}, 400, "key"),
    ("fal", {"key": "   "}, 400, "key"),
    ("fal", {"key": "k" * 1025}, 400, "key"),
    ("fal", {}, 400, "key"),
    ("openai", {"key": "sk-1"}, 404, "provider"),
])
def test_bad_provider_keys_are_refused_in_the_error_shape(client: httpx.Client, provider, body, status, field):
    r = client.put(f"/provider-keys/{provider}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.json()["statusCode"] == status
    assert not any(p["saved"] for p in client.get("/provider-keys").json()["provider_keys"])


def test_admin_overview_needs_the_admin_key(api_url: str, client: httpx.Client):
    for headers in ({}, {"Authorization": f"Bearer {_key(client)}"}, {"Authorization": "Bearer wrong"}):
        r = httpx.get(f"{api_url}/v1/admin/overview", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "AuthError"


def test_admin_overview_shows_workers_queues_providers_and_failures(api_url: str, client: httpx.Client):
    job_id, _ = _image(client, provider_options={"sim": {"fail": "content policy says no"}})
    assert wait_for(client, job_id)["status"] == "failed"
    r = httpx.get(f"{api_url}/v1/admin/overview", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    view = r.json()
    assert view["workers_alive"] >= 1 and any(w["alive"] for w in view["workers"])
    assert {q["queue"] for q in view["queues"]} >= {"media"}
    fal = {p["provider"]: p for p in view["providers"]}["fal"]
    assert fal["failed"] >= 1 and 0 < fal["error_rate"] <= 1
    failure = next(f for f in view["recent_failures"] if f["job_id"] == job_id)
    assert failure["provider"] == "fal" and "content policy" in failure["error"]
    assert failure["account"] == client.get("/me").json()["userId"]


def test_a_blank_admin_key_is_unset():
    """Compose passes `GENGATE_ADMIN_KEY=` when the operator sets none: that is "off", never a key
    that `Authorization: Bearer ` (nothing after it) would match."""
    from gengate.config.settings import Settings

    assert Settings(admin_key="", metrics_token="  ").admin_key is None
    assert Settings(admin_key="").metrics_token is None
    assert Settings(admin_key="k").admin_key.get_secret_value() == "k"
