#!/usr/bin/env python3
"""Screenshots of the dashboard's pages for the README, taken from a real local gateway.

Starts `gengate up` in a fresh data directory (its private Redis, the provider simulators, a worker
and a media worker, the API on a free port), makes a few jobs through the public API (images, a
video, speech, a failure, one still running), then opens each page in headless Chromium (the
system's, as the browser tests use) and writes docs/screenshots/<page>.png. Run from the repository
with the project's venv, after `python3 dev.py test` has installed Chromium and Playwright:

    .venv/bin/python tools/screenshots.py

The simulators' outputs are synthetic (coloured test patterns, tones), so the pictures show the
pages, not what a real model would make.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from gengate import procs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
ADMIN_KEY = "screenshots-admin-key"
WIDTH, HEIGHT = 1280, 860


def chromium_binary() -> str | None:
    """The system's Chromium, as the browser tests find it (tests/browser/conftest.py)."""
    names = (os.environ.get("GENGATE_TEST_CHROMIUM") or "", "chromium", "chromium-browser", "google-chrome")
    return next((path for path in map(shutil.which, filter(None, names)) if path), None)


def start_gateway(data: Path) -> tuple[subprocess.Popen, str, str]:
    """`gengate up` in `data`: its process, base URL and the key it printed."""
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGATE_")}
    env.update(GENGATE_DATA_DIR=str(data), GENGATE_API_PORT=str(port), GENGATE_ADMIN_KEY=ADMIN_KEY,
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([*procs.gengate_command(), "up"], env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    key, deadline = None, time.monotonic() + 120
    for line in proc.stdout:
        if match := re.match(r"export GENGATE_API_KEY=(\S+)", line):
            key = match.group(1)
        if line.startswith("Ctrl-C stops everything") or time.monotonic() > deadline:
            break
    if key is None:
        raise SystemExit("gengate up did not print a key")
    return proc, f"http://127.0.0.1:{port}", key


def make_jobs(api: httpx.Client) -> dict[str, str]:
    """A gallery worth looking at; returns the ids of the jobs the pages are shown with."""
    def post(path: str, body: dict) -> str:
        answer = api.post(path, json=body)
        answer.raise_for_status()
        return answer.json()["job_id"]

    ids = {}
    for prompt, ratio in (("a lighthouse at dawn", "16:9"), ("a red fox in snow", "1:1"),
                          ("city lights in the rain", "9:16"), ("a bowl of ramen", "4:3")):
        ids[prompt] = post("/image", {"model": "flux-schnell", "prompt": prompt, "aspect_ratio": ratio})
    ids["video"] = post("/video", {"model": "kling-v3", "prompt": "waves on a beach", "duration": 5})
    ids["speech"] = post("/speech", {"model": "eleven_v3", "text": "Hello from gengate.", "voice": "rachel"})
    ids["failed"] = post("/image", {"model": "flux-dev", "prompt": "something the provider refuses",
                                    "provider_options": {"sim": {"fail": "content policy violation"}}})
    for job_id in ids.values():
        while api.get(f"/jobs/{job_id}").json()["status"] in ("queued", "processing"):
            time.sleep(0.2)
    ids["running"] = post("/image", {"model": "flux-pro", "prompt": "a slow masterpiece",
                                     "provider_options": {"sim": {"latency": 600}}})
    return ids


def shoot(base: str, key: str, ids: dict[str, str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), headless=True,
                                             chromium_sandbox=False, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.goto(f"{base}/ui")
        page.get_by_label("API key").wait_for()
        page.screenshot(path=OUT / "sign-in.png")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.locator(".card").nth(len(ids) - 1).wait_for()
        page.wait_for_timeout(1500)  # thumbnails
        page.screenshot(path=OUT / "jobs.png")
        for name, fragment, wait in (
            ("job", f"#/jobs/{ids['a lighthouse at dawn']}", "#job-details"),
            ("playground", "#/playground", "main form"),
            ("usage", "#/usage", "main svg"),
            ("settings", "#/settings", "#keys-table"),
        ):
            page.goto(f"{base}/ui{fragment}")
            page.locator(wait).first.wait_for()
            if name == "playground":
                page.locator("#pg-prompt").fill("a lighthouse at dawn, watercolour")
            page.wait_for_timeout(800)
            page.screenshot(path=OUT / f"{name}.png", full_page=True)
        page.get_by_label("Admin key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Use for this tab").click()
        page.goto(f"{base}/ui#/operators")
        page.locator("#ops-failures-table").wait_for()
        page.screenshot(path=OUT / "operators.png", full_page=True)
        page.goto(f"{base}/docs")
        page.locator(".opblock").first.wait_for()
        page.screenshot(path=OUT / "docs.png")
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(f"{base}/ui")
        phone.get_by_label("API key").fill(key)
        phone.get_by_role("button", name="Sign in").click()
        phone.locator(".card").nth(3).wait_for()
        phone.wait_for_timeout(1500)
        phone.screenshot(path=OUT / "jobs-phone.png")
        browser.close()


def main() -> int:
    if chromium_binary() is None:
        print("no Chromium: apt-get install -y chromium (python3 dev.py test does it as root)", file=sys.stderr)
        return 2
    data = Path(tempfile.mkdtemp(prefix="gengate-shots-"))
    proc, base, key = start_gateway(data)
    try:
        with httpx.Client(base_url=f"{base}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            ids = make_jobs(api)
        shoot(base, key, ids)
    finally:
        procs.stop(proc)
        shutil.rmtree(data, ignore_errors=True)
    print(f"wrote {', '.join(sorted(p.name for p in OUT.glob('*.png')))} to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
