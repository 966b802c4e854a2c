"""Routing (api/routing.py): the order of a model's providers by policy and by the request's
`provider_order`, through the real API, worker and simulators; GENGATE_ROUTING on a private stack."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError as SettingsError

from gengate.api import routing
from gengate.config.catalog import ROUTES
from gengate.config.settings import Settings
from gengate.jobs import health
from gengate.jobs.errors import ValidationError
from tests.conftest import wait_for
from tests.resilience.stack import Stack, wait_terminal


def _providers(routes) -> list[str]:
    return [r.provider for r in routes]


def test_policies_order_the_routes():
    name = "flux-pro"  # fal 5 cents an image, Replicate 4
    price = {"fal": 5, "replicate": 4}
    assert _providers(routing.ordered(name, "catalog", lambda r: 0, {})) == ["fal", "replicate"]
    assert _providers(routing.ordered(name, "cheapest", lambda r: price[r.provider], {})) == ["replicate", "fal"]
    # A route that cannot take the request (no price) goes last, whatever it costs.
    assert _providers(routing.ordered(name, "cheapest", lambda r: None if r.provider == "replicate" else 5, {})) \
        == ["fal", "replicate"]
    assert _providers(routing.ordered(name, "fastest", lambda r: 0, {"fal": 9.0, "replicate": 2.5})) == \
        ["replicate", "fal"]
    # Not measured yet: after the measured ones, in the catalog's order.
    assert _providers(routing.ordered(name, "fastest", lambda r: 0, {"fal": None, "replicate": 2.5})) == \
        ["replicate", "fal"]
    assert _providers(routing.ordered(name, "replicate", lambda r: 0, {})) == ["replicate"]


def test_provider_order_chooses_among_the_allowed():
    allowed = list(ROUTES["flux-schnell"])
    assert _providers(routing.choose(allowed, ["replicate", "fal"])) == ["replicate", "fal"]
    assert _providers(routing.choose(allowed, ["replicate", "replicate"])) == ["replicate"]
    with pytest.raises(ValidationError) as refused:
        routing.choose(allowed[:1], ["replicate"])  # the policy allows fal only
    assert refused.value.field == "provider_order"


@pytest.mark.parametrize("bad", [{"nope": "catalog"}, {"flux-schnell": "piapi"}, {"flux-schnell": "fast"},
                                 {"*": "fal,openai"}])
def test_a_routing_setting_that_names_nothing_is_refused_at_startup(bad):
    with pytest.raises(SettingsError):
        Settings(routing=bad)


def test_provider_order_through_the_api(client: httpx.Client):
    tag = uuid.uuid4().hex
    created = client.post("/image", json={"model": "flux-schnell", "prompt": f"order {tag}",
                                          "provider_order": ["replicate", "fal"]})
    assert created.status_code == 202, created.text
    job = wait_for(client, created.json()["job_id"])
    assert job["status"] == "completed" and job["provider"] == "replicate" and job["model"] == "replicate:flux-schnell"
    assert job["routes"] == ["fal"] and [a["provider"] for a in job["attempts"]] == ["replicate"]
    for body, field in (({"model": "flux-schnell", "provider_order": ["piapi"]}, "provider_order"),
                        ({"model": "fal:flux-schnell", "provider_order": ["fal"]}, "provider_order"),
                        ({"model": "flux-schnell", "provider_order": []}, "provider_order"),
                        ({"model": "flux-schnell", "provider_order": ["fal"], "allow_pooled_fallback": "yes"},
                         "allow_pooled_fallback")):
        refused = client.post("/image", json={"prompt": f"bad {tag}", **body})
        assert refused.status_code == 400 and refused.json()["field"] == field, (body, refused.text)


def test_a_fallback_must_take_the_request_as_validated():
    """A route that refuses the request (here: a mode it does not have, or parameters it does not
    take) is no fallback: it would change what was asked and priced."""
    fal, replicate = ROUTES["nano-banana-pro"]

    def check(route):  # what api/submission.py passes: the request's validation on that route
        if route is replicate:
            raise ValidationError("aspect_ratio '5:4' is not supported", field="aspect_ratio")
        return "edit", []

    assert routing.takes_same_request(fal, "edit", check)
    assert not routing.takes_same_request(replicate, "edit", check)
    assert not routing.takes_same_request(fal, "lipsync", check)  # a mode the route does not have


@pytest.fixture(scope="module")
def policy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    policies = {"flux-pro": "cheapest", "flux-dev": "fastest", "flux-schnell": "replicate"}
    with Stack(Path(tmp_path_factory.mktemp("routing")), GENGATE_ROUTING=json.dumps(policies)) as s:
        s.worker().start()
        yield s


@pytest.mark.parametrize(("model", "first", "rest"), [
    ("flux-pro", "replicate", ["fal"]),  # cheapest: Replicate's 4 cents before fal's 5
    ("flux-schnell", "replicate", []),  # a list: only Replicate
])
def test_routing_setting_decides_the_first_provider(policy_stack: Stack, model: str, first: str, rest: list[str]):
    _, key = policy_stack.account()
    with policy_stack.client(key) as c:
        job_id = c.post("/image", json={"model": model, "prompt": f"policy {uuid.uuid4().hex}"}).json()["job_id"]
        assert wait_terminal(policy_stack.redis(), [job_id], 60)
        job = c.get(f"/jobs/{job_id}").json()
    assert job["status"] == "completed" and job["provider"] == first and job["routes"] == rest


def test_fastest_goes_by_the_measured_median(policy_stack: Stack):
    r = policy_stack.redis()
    for _ in range(health.DURATIONS_MIN):
        health.record_duration(r, "fal", "flux-dev", 9.0)
        health.record_duration(r, "replicate", "flux-dev", 1.5)
    _, key = policy_stack.account()
    with policy_stack.client(key) as c:
        job_id = c.post("/image", json={"model": "flux-dev", "prompt": f"fast {uuid.uuid4().hex}"}).json()["job_id"]
        assert wait_terminal(r, [job_id], 60)
        assert c.get(f"/jobs/{job_id}").json()["provider"] == "replicate"


def test_a_blank_provider_key_is_unset():
    assert Settings(fal={"api_key": "  "}).fal.api_key is None
    assert Settings(fal={"api_key": "k"}).fal.api_key.get_secret_value() == "k"


def test_an_operator_with_some_providers_keys_gets_the_model_there(tmp_path: Path):
    """No pooled fal key (blank), a Replicate one: flux-schnell runs on Replicate instead of a 400 for
    fal's missing key; a request with its own fal key still starts on fal (BYOK), as the catalog says."""
    with Stack(tmp_path / "partial", GENGATE_FAL__API_KEY="") as stack:
        stack.worker().start()
        _, key = stack.account()
        with stack.client(key) as c:
            pooled = c.post("/image", json={"model": "flux-schnell", "prompt": f"keys {uuid.uuid4().hex}"}).json()
            own = c.post("/image", json={"model": "flux-schnell", "prompt": f"own {uuid.uuid4().hex}"},
                         headers={"X-Provider-Key-Fal": "users-fal-key"}).json()
            assert wait_terminal(stack.redis(), [pooled["job_id"], own["job_id"]], 60)
            pooled, own = (c.get(f"/jobs/{j['job_id']}").json() for j in (pooled, own))
    assert pooled["status"] == "completed" and pooled["provider"] == "replicate" and pooled["routes"] == []
    assert own["status"] == "completed" and own["provider"] == "fal" and own["byok"] and own["charged_cents"] == 0


def test_cheapest_never_puts_a_route_without_a_key_first(tmp_path: Path):
    """flux-pro is cheaper on Replicate, but this operator has no Replicate key: the job runs on fal,
    where there is one, rather than being refused for the cheaper route's missing key."""
    with Stack(tmp_path / "cheap", GENGATE_REPLICATE__API_KEY="",
               GENGATE_ROUTING=json.dumps({"flux-pro": "cheapest"})) as stack:
        stack.worker().start()
        _, key = stack.account()
        with stack.client(key) as c:
            answer = c.post("/image", json={"model": "flux-pro", "prompt": f"cheap {uuid.uuid4().hex}"})
            assert answer.status_code == 202, answer.text
            assert wait_terminal(stack.redis(), [answer.json()["job_id"]], 60)
            job = c.get(f"/jobs/{answer.json()['job_id']}").json()
    assert job["status"] == "completed" and job["provider"] == "fal" and job["routes"] == []
