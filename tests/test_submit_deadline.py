"""The submit step never outlives its deadline: past it, the sweeper fails a job that is still
processing without a provider handle, so a step still retrying then would orphan a provider run."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import redis

from gengate.adapters.base import ProviderFailure, ProviderRequest
from gengate.adapters.fal import create as create_fal
from gengate.config.settings import ProviderSettings, Settings
from gengate.jobs.cache import Scripts
from gengate.jobs.store import JobStore
from gengate.storage.local import LocalStorage
from gengate.tasks.pipeline import _submit_with_retries
from gengate.tasks.runtime import Runtime
from tests.conftest import sim_requests


def test_submit_retries_stop_before_the_deadline(sim_url: str, rds: redis.Redis, tmp_path: Path, sim):
    settings = Settings(provider_retries=10, retry_base_seconds=0.1, retry_max_seconds=1.0,
                        fal=ProviderSettings(base_url=f"{sim_url}/fal", api_key="k", timeout=2.0))
    rt = Runtime(settings, rds, JobStore(rds, ttl_seconds=60), LocalStorage(tmp_path, "http://x"), Scripts(rds))
    marker = uuid.uuid4().hex
    req = ProviderRequest(job_id="job_deadline", model="flux-schnell", capability="image", mode="text-to-image",
                          endpoint="fal-ai/flux/schnell", params={"prompt": marker},
                          options={"sim": {"submit_status": 503, "submit_status_times": 1000, "retry_after": 1}})
    t0 = time.monotonic()
    with pytest.raises(ProviderFailure) as failure:
        _submit_with_retries(rt, create_fal(settings.fal), req, "k", deadline=time.time() + 5.0)
    elapsed = time.monotonic() - t0
    assert failure.value.status == 503
    # Ten retries a second apart would take ~10 s; with a 2 s call budget none may start after ~3 s.
    assert elapsed < 5.0, elapsed
    assert sim_requests(sim, marker) == []  # every attempt was refused, none accepted
