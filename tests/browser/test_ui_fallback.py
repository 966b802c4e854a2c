"""A job that fell back, on its dashboard page: its attempts (fal refused, Replicate made it), and the
Operators page's provider health, in Chromium against a private stack whose fal answers 503 (the
session's simulators are shared, so their global config is not ours to change)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import PageLog, sign_in
from tests.resilience.stack import Stack, wait_terminal

ADMIN = "fallback-admin-key"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(Path(tmp_path_factory.mktemp("ui-fallback")), GENGATE_ADMIN_KEY=ADMIN) as s:
        s.worker().start()
        httpx.post(f"{s.sim_url}/fal/_sim/config", json={"submit_status": 503}, timeout=10).raise_for_status()
        yield s


def test_a_fallen_back_job_shows_its_attempts(stack: Stack, page: Any, page_log: PageLog):
    _, key = stack.account()
    with stack.client(key) as api:
        job_id = api.post("/image", json={"model": "flux-schnell", "prompt": f"ui {uuid.uuid4().hex}"}).json()["job_id"]
        assert wait_terminal(stack.redis(), [job_id], 60)
    sign_in(page, stack.api_url, key, f"#/jobs/{job_id}")
    page.locator('#job-status .badge[data-status="completed"]').wait_for()
    attempts = page.locator("#job-attempts li").all_inner_texts()
    assert attempts[0].startswith("fal: refused (HTTP 503)") and attempts[1] == "replicate: completed"
    assert page.locator("#job-provider").inner_text() == "replicate"
    page.goto(f"{stack.api_url}/ui#/settings")
    page.get_by_label("Admin key").fill(ADMIN)
    page.get_by_role("button", name="Use for this tab").click()
    page.goto(f"{stack.api_url}/ui#/operators")
    fal = page.locator('#ops-providers-table tr:has(td:text-is("fal"))')
    fal.wait_for()
    cells = fal.locator("td").all_inner_texts()
    assert cells[1] == "closed" and cells[2] == "0.0 %"  # one refusal: below the threshold, no call succeeded
    page_log.assert_clean()
