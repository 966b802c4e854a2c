"""Webhooks end to end: real API, worker, sweeper and simulator, delivering to a local receiver,
every delivery verified with the `standardwebhooks` package and the account's secret."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
import redis
from standardwebhooks import Webhook, WebhookVerificationError

from gengate import procs
from gengate.jobs import keys
from gengate.jobs import webhooks as hooks
from gengate.jobs.record import Job
from tests.conftest import wait_for, wait_until


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each path by its plan (status codes, or "hang"), then 200; records every call."""

    base: str
    plans: dict[str, list] = field(default_factory=dict)
    calls: dict[str, list[Call]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, *plan, host: str = "localhost") -> str:
        path = f"/hook/{uuid.uuid4().hex}"
        with self.lock:
            self.plans[path] = list(plan)
            self.calls[path] = []
        return self.base.replace("localhost", host) + path

    def got(self, url: str) -> list[Call]:
        with self.lock:
            return list(self.calls[httpx.URL(url).path])

    def answer(self, path: str, call: Call) -> int | str:
        with self.lock:
            self.calls.setdefault(path, []).append(call)
            plan = self.plans.get(path) or []
            return plan.pop(0) if plan else 200


def _handler(receiver: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            what = receiver.answer(self.path, Call(dict(self.headers.items()), body))
            if what == "hang":
                time.sleep(3)  # past the worker's 2 s timeout
                what = 200
            try:
                self.send_response(int(what))
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the worker gave up on us already

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    recv = Receiver(f"http://localhost:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(recv)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield recv
    server.shutdown()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*procs.gengate_command(), "keys", *args], env=env, capture_output=True,
                          text=True, check=True, timeout=30)


@dataclass
class Account:
    account_id: str
    secret: str
    client: httpx.Client


@pytest.fixture(scope="module")
def account(env, api_url, _worker) -> Iterator[Account]:
    """A fresh account made by `gengate keys create`, which shows its webhook secret once."""
    out = _cli(env, "create")
    *before, key = out.stdout.strip().splitlines()
    [secret] = [line.split(": ", 1)[1] for line in before if line.startswith("webhook secret: ")]
    account_id = out.stderr.split("account:")[1].split()[0]
    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10) as c:
        yield Account(account_id, secret, c)


@pytest.fixture
def acct(account: Account, worker) -> Account:
    return account


def _image(acct: Account, url: str, events: list[str] | None = None, **sim) -> str:
    body: dict = {"model": "flux-schnell", "prompt": f"hook {uuid.uuid4().hex}", "webhook_url": url}
    if events is not None:
        body["webhook_events"] = events
    if sim:
        body["provider_options"] = {"sim": sim}
    r = acct.client.post("/image", json=body)
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def _verified(acct: Account, calls: list[Call]) -> list[dict]:
    return [Webhook(acct.secret).verify(c.body, c.headers) for c in calls]


def _settled(rds: redis.Redis, delivery_id: str) -> bool:
    return rds.zscore(keys.WEBHOOKS_DUE, delivery_id) is None and not rds.exists(keys.webhook(delivery_id))


def test_signature_verifies_with_standardwebhooks():
    secret = hooks.new_secret()
    body = b'{"job_id":"job_1","event":"completed"}'
    ts = int(time.time())
    headers = hooks.headers(secret, "msg_1", ts, body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"completed", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(hooks.new_secret()).verify(body, headers)


def test_receiver_failing_twice_gets_three_signed_deliveries_with_one_id(acct: Account, receiver: Receiver, rds):
    url = receiver.url(500, 500, 200)
    job_id = _image(acct, url)
    calls = wait_until(lambda: (c := receiver.got(url)) and len(c) >= 3 and c, what="three deliveries")
    [msg_id] = {c.headers["webhook-id"] for c in calls}
    wait_until(lambda: _settled(rds, msg_id), what="the delivery to be done")
    assert len(receiver.got(url)) == 3
    payloads = _verified(acct, calls)
    job = acct.client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "completed"
    for p in payloads:
        assert p.pop("event") == "completed"
        assert p == {k: job[k] for k in p} and set(p) <= set(job)  # the spec's job (GET adds its details)
    assert all(c.headers["content-type"] == "application/json" for c in calls)


def test_default_events_are_completed_only(acct: Account, receiver: Receiver, rds):
    url = receiver.url()
    job_id = _image(acct, url, latency=0.5)  # long enough to have progress, which nobody asked for
    assert wait_for(acct.client, job_id)["status"] == "completed"
    [call] = wait_until(lambda: receiver.got(url), what="the delivery")
    assert _verified(acct, [call])[0]["event"] == "completed"
    wait_until(lambda: _settled(rds, call.headers["webhook-id"]), what="the delivery to be done")
    assert len(receiver.got(url)) == 1


def test_progress_then_completed_when_subscribed(acct: Account, receiver: Receiver):
    url = receiver.url()
    job_id = _image(acct, url, ["progress", "completed"], latency=0.6)
    assert wait_for(acct.client, job_id)["status"] == "completed"
    calls = wait_until(lambda: (c := receiver.got(url)) and c[-1].payload["event"] == "completed" and c,
                       what="the completed delivery")
    payloads = _verified(acct, calls)
    events = [p["event"] for p in payloads]
    assert events[0] == "progress" and events.count("completed") == 1 and set(events) == {"progress", "completed"}
    assert all(p["status"] == "processing" and p["job_id"] == job_id for p in payloads if p["event"] == "progress")
    assert len({c.headers["webhook-id"] for c in calls}) == len(calls)  # one id per event


def test_failed_job_delivers_failed(acct: Account, receiver: Receiver):
    url = receiver.url()
    job_id = _image(acct, url, ["failed"], fail="NSFW content detected")
    assert wait_for(acct.client, job_id)["status"] == "failed"
    [call] = wait_until(lambda: receiver.got(url), what="the failed delivery")
    [payload] = _verified(acct, [call])
    assert payload["event"] == "failed" and payload["job_id"] == job_id and "NSFW" in payload["error"]


def test_410_stops_retries(acct: Account, receiver: Receiver, rds):
    url = receiver.url(410, 200)
    _image(acct, url)
    [call] = wait_until(lambda: receiver.got(url), what="the delivery")
    wait_until(lambda: _settled(rds, call.headers["webhook-id"]), what="the delivery to be dropped")
    assert len(receiver.got(url)) == 1


def test_retries_end_after_the_schedule(acct: Account, receiver: Receiver, rds):
    url = receiver.url(*[503] * 10)
    _image(acct, url)
    first = wait_until(lambda: receiver.got(url), what="the first attempt")[0]
    wait_until(lambda: _settled(rds, first.headers["webhook-id"]), what="retries to run out")
    assert len(receiver.got(url)) == 4  # the first attempt and one per delay of 0.2,0.4,0.8


def test_hanging_receiver_is_retried_with_the_same_id(acct: Account, receiver: Receiver):
    url = receiver.url("hang", 200)
    _image(acct, url)
    calls = wait_until(lambda: (c := receiver.got(url)) and len(c) >= 2 and c, what="a retry after the timeout")
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]
    _verified(acct, calls)


def test_unsafe_target_is_never_contacted(acct: Account, receiver: Receiver, rds):
    """The API refuses such URLs up front; the worker refuses them too (a record written otherwise,
    or a name that resolves somewhere else by delivery time). Also exercises `schedule`."""
    job_id = _image(acct, receiver.url())
    assert wait_for(acct.client, job_id)["status"] == "completed"
    unsafe = receiver.url(host="127.0.0.1")  # only the name `localhost` is allowed in tests
    rds.hset(keys.job(job_id), "webhook_url", orjson.dumps(unsafe))
    job = Job.from_fields(rds.hgetall(keys.job(job_id)))
    pipe = rds.pipeline(transaction=True)
    msg_id = hooks.schedule(pipe, job, "completed")
    pipe.execute()
    assert msg_id == hooks.delivery_id(job_id, "completed")
    wait_until(lambda: _settled(rds, msg_id), what="the unsafe delivery to be dropped")
    assert receiver.got(unsafe) == []


def test_keys_create_shows_the_webhook_secret_once(env, api_url):
    first = _cli(env, "create")
    lines = first.stdout.strip().splitlines()
    assert lines[-1].startswith("gg_live_") and lines[0].startswith("webhook secret: whsec_")
    account_id = first.stderr.split("account:")[1].split()[0]
    again = _cli(env, "create", "--account", account_id).stdout.strip().splitlines()
    assert len(again) == 1 and again[0].startswith("gg_live_")
    rotated = _cli(env, "webhook-secret", "--account", account_id).stdout.strip().splitlines()[-1]
    assert rotated.startswith("whsec_") and rotated != lines[0].split(": ", 1)[1]


def test_a_cache_hit_delivers_completed_too(acct: Account, receiver: Receiver):
    """A job born completed (a cache hit) gets its webhook like any other."""
    prompt = f"hook hit {uuid.uuid4().hex}"
    first = acct.client.post("/image", json={"model": "flux-schnell", "prompt": prompt}).json()["job_id"]
    assert wait_for(acct.client, first)["status"] == "completed"
    url = receiver.url()
    hit = acct.client.post("/image", json={"model": "flux-schnell", "prompt": prompt, "webhook_url": url})
    assert hit.headers["X-Cache"] == "HIT"
    [call] = wait_until(lambda: receiver.got(url), what="the hit's delivery")
    payload = _verified(acct, [call])[0]
    assert payload["event"] == "completed" and payload["job_id"] == hit.json()["job_id"]
    assert payload["cache"]["hit"] is True
