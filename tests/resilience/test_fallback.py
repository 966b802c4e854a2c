"""Issue 19's fallback matrix: `flux-schnell` (fal first, Replicate second in the catalog) while fal
misbehaves in each way that matters, on a private stack. For every row: which provider made the
image, how many generations each provider ran for the job (never two that succeeded), and the
ledger (one hold at a time, exactly one capture or release, the balance equal to the ledger).

Rows where fal provably never accepted the job fall back; a timeout after sending does not (fal may
be running it), nor does a BYOK job without `allow_pooled_fallback`. The figures go into
RESILIENCE.md's "Fallback" table (print them with `-s`)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gengate.jobs import accounts, keys
from tests.resilience.stack import Stack, wait_terminal

pytestmark = pytest.mark.resilience

MODEL = "flux-schnell"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("fallback"), GENGATE_CIRCUIT_FAILURES="3",
               GENGATE_CIRCUIT_COOLDOWN_SECONDS="60") as s:
        s.worker().start()
        yield s


def _fal(stack: Stack, **config: Any) -> None:
    """fal's simulator reset, then set to misbehave in one way for every request (its global config)."""
    base = f"{stack.sim_url}/fal/_sim"
    httpx.post(f"{base}/reset", timeout=10).raise_for_status()
    if config:
        httpx.post(f"{base}/config", json=config, timeout=10).raise_for_status()


def _reset_health(stack: Stack) -> None:
    """Each row starts with every circuit closed (rows that count failures would open fal's)."""
    r = stack.redis()
    for key in r.scan_iter("gengate:provider:*"):
        r.delete(key)


def _run(stack: Stack, key: str, *, headers: dict[str, str] | None = None, **extra: Any) -> tuple[dict, str]:
    tag = uuid.uuid4().hex
    with stack.client(key) as c:
        answer = c.post("/image", json={"model": MODEL, "prompt": f"fallback {tag}", **extra}, headers=headers or {})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        assert wait_terminal(stack.redis(), [job_id], 60), "the job did not end"
        return c.get(f"/jobs/{job_id}").json(), tag


def _generations(stack: Stack, provider: str, tag: str) -> int:
    return sum(tag in str(sub.get("input")) for sub in stack.sim_submissions(provider))


def _ledger(stack: Stack, account: str, job_id: str) -> list[str]:
    return [e[b"kind"].decode() for _, e in stack.redis().xrange(keys.account_ledger(account))
            if e[b"job"].decode() == job_id]


def _check_money(stack: Stack, account: str, job: dict) -> None:
    kinds = _ledger(stack, account, job["job_id"])
    assert kinds.count("capture") + kinds.count("release") <= 1, kinds  # one settlement
    assert kinds.count("capture") == (1 if job["status"] == "completed" and job["charged_cents"] else 0), kinds
    r = stack.redis()
    assert int(r.hget(keys.account(account), "balance_cents")) == accounts.ledger_sum(r, account)
    assert int(r.hget(keys.account(account), "holds_cents") or 0) == 0


def _row(name: str, job: dict, stack: Stack, tag: str) -> str:
    fal, rep = _generations(stack, "fal", tag), _generations(stack, "replicate", tag)
    line = (f"| {name} | {job['status']} | {job['provider']} | "
            f"{' → '.join(a['provider'] + ':' + a['outcome'] for a in job['attempts'])} | {fal} | {rep} | "
            f"{job['charged_cents']} |")
    print(line)
    return line


@pytest.mark.parametrize(("row", "config"), [
    ("fal answers 503 on submit", {"submit_status": 503}),
    ("fal answers 429 without Retry-After", {"submit_status": 429}),
    ("fal refuses the key (401)", {"submit_status": 401}),
])
def test_a_refusal_before_acceptance_falls_back_once(stack: Stack, row: str, config: dict):
    _fal(stack, **config)
    _reset_health(stack)
    account, key = stack.account()
    job, tag = _run(stack, key)
    _row(row, job, stack, tag)
    assert job["status"] == "completed" and job["provider"] == "replicate" and job["model"] == "replicate:flux-schnell"
    assert [a["provider"] for a in job["attempts"]] == ["fal", "replicate"]
    assert job["attempts"][0]["status"] == config["submit_status"] and job["attempts"][0]["ended_at"]
    assert _generations(stack, "fal", tag) == 0 and _generations(stack, "replicate", tag) == 1
    assert job["charged_cents"] == job["price_cents"] > 0
    _check_money(stack, account, job)


def test_a_timeout_after_sending_does_not_fall_back(stack: Stack):
    """fal takes the request and answers after the client's timeout: it may be generating (and
    billing) it, so the job must not run anywhere else."""
    _fal(stack, hang=6)
    _reset_health(stack)
    account, key = stack.account()
    job, tag = _run(stack, key)
    _row("fal times out after sending", job, stack, tag)
    assert job["status"] == "failed" and job["provider"] == "fal"
    assert [a["provider"] for a in job["attempts"]] == ["fal"]
    assert _generations(stack, "replicate", tag) == 0
    _check_money(stack, account, job)


def test_a_failed_run_falls_back(stack: Stack):
    """fal accepted the job and reported its run failed: that run ended, so Replicate may try."""
    _fal(stack, fail="model crashed")
    _reset_health(stack)
    account, key = stack.account()
    job, tag = _run(stack, key)
    _row("fal's run fails", job, stack, tag)
    assert job["status"] == "completed" and job["provider"] == "replicate"
    assert [(a["provider"], a["outcome"]) for a in job["attempts"]] == [("fal", "failed"), ("replicate", "completed")]
    assert _generations(stack, "fal", tag) == 1 and _generations(stack, "replicate", tag) == 1
    _check_money(stack, account, job)


def test_byok_never_moves_to_pooled_keys_unless_allowed(stack: Stack):
    _fal(stack, submit_status=503)
    _reset_health(stack)
    account, key = stack.account()
    own = {"X-Provider-Key-Fal": "users-own-fal-key"}
    job, tag = _run(stack, key, headers=own)
    _row("BYOK, fal answers 503", job, stack, tag)
    assert job["status"] == "failed" and job["routes"] == [] and len(job["attempts"]) == 1
    assert _generations(stack, "replicate", tag) == 0 and job["charged_cents"] == 0
    _check_money(stack, account, job)
    _reset_health(stack)  # that job's retries counted against fal's circuit
    allowed, tag = _run(stack, key, headers=own, allow_pooled_fallback=True)
    _row("BYOK with allow_pooled_fallback, fal 503", allowed, stack, tag)
    assert allowed["status"] == "completed" and allowed["provider"] == "replicate"
    assert allowed["charged_cents"] > 0 and not allowed["byok"]  # the pooled attempt is billed
    _check_money(stack, account, allowed)


def test_pinned_provider_and_provider_options_never_fall_back(stack: Stack):
    _fal(stack, submit_status=503)
    _reset_health(stack)
    account, key = stack.account()
    pinned, tag = _run(stack, key, model="fal:flux-schnell")
    assert pinned["status"] == "failed" and pinned["routes"] == [] and _generations(stack, "replicate", tag) == 0
    optioned, tag = _run(stack, key, provider_options={"enable_safety_checker": False})
    assert optioned["status"] == "failed" and _generations(stack, "replicate", tag) == 0
    ordered, tag = _run(stack, key, provider_order=["replicate"])
    assert ordered["status"] == "completed" and [a["provider"] for a in ordered["attempts"]] == ["replicate"]
    for job in (pinned, optioned, ordered):
        _check_money(stack, account, job)


def test_an_open_circuit_sends_new_jobs_to_the_next_provider_at_once(stack: Stack):
    """Three refusals in a row (GENGATE_CIRCUIT_FAILURES=3 here) open fal's circuit, shared by every
    worker through Redis: the next job goes to Replicate without asking fal, even though fal works
    again by then (the cool-down has not passed), and /readyz and /metrics say so."""
    _fal(stack, submit_status=503)
    _reset_health(stack)
    account, key = stack.account()
    for _ in range(3):
        job, _tag = _run(stack, key)
        assert job["provider"] == "replicate"
    _fal(stack)  # healthy again, but the circuit is open for its cool-down
    job, tag = _run(stack, key)
    _row("fal's circuit is open", job, stack, tag)
    assert [(a["provider"], a["outcome"]) for a in job["attempts"]] == [("fal", "circuit_open"),
                                                                         ("replicate", "completed")]
    assert _generations(stack, "fal", tag) == 0
    assert httpx.get(f"{stack.api_url}/readyz").json()["providers"]["fal"] == "open"
    assert 'gengate_provider_circuit_state{provider="fal"} 2.0' in httpx.get(f"{stack.api_url}/metrics").text
    _check_money(stack, account, job)


def test_connection_refused_falls_back(tmp_path: Path):
    """fal's address answers nothing at all (a closed port): the request never reached it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with Stack(tmp_path / "refused", GENGATE_FAL__BASE_URL=f"http://127.0.0.1:{closed}/fal") as stack:
        stack.worker().start()
        account, key = stack.account()
        job, tag = _run(stack, key)
        _row("fal's port refuses connections", job, stack, tag)
        assert job["status"] == "completed" and job["provider"] == "replicate"
        assert job["attempts"][0]["outcome"] == "unreachable"
        _check_money(stack, account, job)
