"""A Hypothesis state machine over the money scripts and the job transitions, on the real Redis:
admit (submit), admit again (a duplicated create), start, send to the provider, complete (by the
provider or from the cache), fail, cancel, the provider's answer to a cancel (settled, possibly
twice and both ways), and every transition delivered twice. Whatever the order, the balance never
goes below zero, every job's hold ends at most once (captured or released), failed, BYOK and
cache-hit jobs cost 0, and a cancelled job costs its price exactly when it was sent to the provider
and the provider did not confirm stopping it before it started."""

from __future__ import annotations

import uuid

import hypothesis.strategies as st
import redis
from hypothesis import settings as hsettings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from gengate.config.settings import Settings
from gengate.jobs import accounts, keys, states
from gengate.jobs.apikeys import create_account
from gengate.jobs.record import Job
from gengate.jobs.store import JobStore

START = 50
SETTINGS = Settings()


def _machine(rds: redis.Redis):
    class Billing(RuleBasedStateMachine):
        jobs = Bundle("jobs")

        def __init__(self) -> None:
            super().__init__()
            self.account = create_account(rds, plan="enterprise")
            accounts.set_limits(rds, self.account, rpm=0, concurrency=0)
            accounts.credit(rds, self.account, START)
            self.scripts = accounts.Scripts(rds)
            self.store = JobStore(rds, ttl_seconds=600)
            self.price: dict[str, int] = {}
            self.byok: set[str] = set()
            self.hit: set[str] = set()
            self.sent: set[str] = set()  # the send step took the `unsent` mark: the provider may have it
            self.too_late: set[str] = set()  # the provider's first answer to the cancel was "too late"

        def _admit(self, job_id: str, price: int) -> bool:
            k, a = accounts.admit_args(self.account, job_id, price, SETTINGS)
            return accounts.admission(self.scripts.admit(keys=k, args=a)).admitted

        @rule(target=jobs, price=st.sampled_from([5, 10, 20]), byok=st.booleans())
        def submit(self, price: int, byok: bool) -> str:
            job_id = "job_" + uuid.uuid4().hex
            held = 0 if byok else price
            if self._admit(job_id, held):
                job = Job(job_id=job_id, account=self.account, capability="image", model="fal:flux-schnell",
                          provider="fal", endpoint="x", input={}, byok=byok, hold_cents=held)
                rds.hset(keys.job(job_id), mapping=job.to_fields())
                self.price[job_id] = held
                if byok:
                    self.byok.add(job_id)
            return job_id

        @rule(job_id=jobs)
        def duplicate(self, job_id: str) -> None:
            if job_id in self.price:
                self._admit(job_id, self.price[job_id])  # a redelivered create holds nothing more

        @rule(job_id=jobs)
        def start(self, job_id: str) -> None:
            self.store.transition(job_id, states.PROCESSING, unsent=True)

        @rule(job_id=jobs)
        def send(self, job_id: str) -> None:
            if self.store.take_unsent(job_id):
                self.sent.add(job_id)

        @rule(job_id=jobs, confirmed=st.booleans(), twice=st.booleans())
        def provider_answers_cancel(self, job_id: str, confirmed: bool, twice: bool) -> None:
            for answer in ([confirmed, not confirmed] if twice else [confirmed]):
                kind = accounts.RELEASE if answer else accounts.CAPTURE
                if self.store.settle(job_id, kind) and not answer:
                    self.too_late.add(job_id)

        @rule(job_id=jobs, from_cache=st.booleans(), twice=st.booleans())
        def complete(self, job_id: str, from_cache: bool, twice: bool) -> None:
            for _ in range(2 if twice else 1):
                won, _ = self.store.transition(job_id, states.COMPLETED, cache={"hit": from_cache})
                if won and from_cache:
                    self.hit.add(job_id)

        @rule(job_id=jobs, twice=st.booleans())
        def fail(self, job_id: str, twice: bool) -> None:
            for _ in range(2 if twice else 1):
                self.store.transition(job_id, states.FAILED, error="boom")

        @rule(job_id=jobs, twice=st.booleans())
        def cancel(self, job_id: str, twice: bool) -> None:
            for _ in range(2 if twice else 1):
                self.store.transition(job_id, states.CANCELLED)

        def _ledger(self) -> list[dict]:
            return [{k.decode(): v.decode() for k, v in e.items()}
                    for _, e in rds.xrange(keys.account_ledger(self.account))]

        @invariant()
        def money_adds_up(self) -> None:
            balance = int(rds.hget(keys.account(self.account), "balance_cents") or 0)
            holds = int(rds.hget(keys.account(self.account), "holds_cents") or 0)
            assert balance >= 0 and holds >= 0 and balance - holds >= 0
            assert balance == accounts.ledger_sum(rds, self.account)
            live = 0
            for job_id, price in self.price.items():
                status = rds.hget(keys.job(job_id), "status")
                if status and status.decode().strip('"') in (states.QUEUED, states.PROCESSING):
                    live += price
                elif self.store.settlement_pending(job_id):  # cancelled: waiting for the provider's word
                    assert status.decode().strip('"') == states.CANCELLED and job_id in self.sent
                    live += price
            assert holds == live

        @invariant()
        def at_most_one_capture_and_only_where_due(self) -> None:
            ended = [e["job"] for e in self._ledger() if e["kind"] in ("capture", "release")]
            assert len(ended) == len(set(ended)), "a hold ended twice"
            captured = [e["job"] for e in self._ledger() if e["kind"] == "capture"]
            for job_id in captured:
                status = rds.hget(keys.job(job_id), "status").decode().strip('"')
                assert status in (states.COMPLETED, states.CANCELLED)
                assert job_id not in self.byok and job_id not in self.hit
                if status == states.CANCELLED:
                    assert job_id in self.sent and job_id in self.too_late
            for job_id in self.too_late:
                assert job_id in captured

    return Billing


def test_billing_state_machine(rds: redis.Redis):
    run_state_machine_as_test(_machine(rds), settings=hsettings(max_examples=40, stateful_step_count=30,
                                                                 deadline=None))
