"""/ui, the web dashboard's first pages (issue 20): sign-in and sign-out, the Jobs gallery and a
job's page, in headless Chromium against the real API and worker. Every test also checks the page
reached no other host, logged no error and broke no rule of its Content-Security-Policy."""

from __future__ import annotations

import html.parser
import json
import re
import uuid
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from gengate.api.routes.ui import ASSETS, csp
from tests.browser.conftest import PageLog, sign_in
from tests.conftest import wait_for

XSS = "<script>window.__x=1</script><img src=x onerror=\"window.__x=2\">"


class _Refs(html.parser.HTMLParser):
    """The URLs a page loads (src=, href=) and the bodies of its inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.urls += [value for name, value in attrs if name in ("src", "href") and value
                      and not value.startswith("#")]
        self.handlers += [name for name, _ in attrs if name.startswith("on") or name == "style"]
        if tag == "script" and not named.get("src") or tag == "style":
            self.inline.append(tag)


def _image(api: httpx.Client, prompt: str = "a lighthouse", **sim: Any) -> str:
    body = {"model": "flux-schnell", "prompt": f"{prompt} {uuid.uuid4().hex[:8]}",
            "provider_options": {"sim": sim}}
    answer = api.post("/image", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def _sign_in(page: Any, api_url: str, key: str) -> None:
    sign_in(page, api_url, key)
    page.locator("#gallery").wait_for(state="attached")


def _card(page: Any, job_id: str) -> Any:
    return page.locator(f'.card[data-job-id="{job_id}"]')


def test_ui_serves_under_a_strict_csp_with_no_inline_script(api_url: str):
    """No browser needed: the page and each file it names carry the CSP, which allows nothing inline,
    no other host and no string-to-HTML sink; the page has no inline script, style or handler."""
    page = httpx.get(f"{api_url}/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == csp(None)
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy and "*" not in policy
    assert "default-src 'self'" in policy and "require-trusted-types-for 'script'" in policy
    refs = _Refs()
    refs.feed(page.text)
    assert refs.inline == [] and refs.handlers == []
    assert any(ref.endswith("app.js") for ref in refs.urls)
    for ref in refs.urls:
        assert not urlsplit(ref).scheme and not ref.startswith("//"), f"{ref} is not a file of this gateway"
        asset = httpx.get(urljoin(f"{api_url}/ui", ref))
        assert asset.status_code == 200, ref
        assert asset.headers["content-security-policy"] == policy, ref
        assert asset.headers["x-content-type-options"] == "nosniff", ref
    # The modules app.js imports are served as JavaScript too; nothing else is.
    assert httpx.get(f"{api_url}/ui/static/stream.js").headers["content-type"].startswith("text/javascript")
    for path in ("/ui/static/index.html", "/ui/static/..%2F..%2Fapp.py", "/ui/static/nope.js"):
        assert httpx.get(f"{api_url}{path}").status_code == 404, path
    # No module of the dashboard writes HTML from a string: every one it ships, as served.
    modules = [name for name in ASSETS if name.endswith(".js")]
    assert {"app.js", "playground.js", "usage.js", "settings.js", "operators.js"} <= set(modules)
    for name in modules:
        source = httpx.get(f"{api_url}/ui/static/{name}").text
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", source), name


def test_the_storage_public_origin_may_serve_previews():
    policy = csp("https://cdn.example.com/gengate/")
    assert "img-src 'self' https://cdn.example.com data:" in policy
    assert "media-src 'self' https://cdn.example.com;" in policy


def test_a_wrong_key_is_refused(api_url: str, page: Any, page_log: PageLog):
    page.goto(f"{api_url}/ui")
    page.get_by_label("API key").fill("gg_live_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_function("() => document.querySelector('#sign-in-error').textContent.includes('not valid')")
    assert page.evaluate("sessionStorage.length") == 0
    # The 401 is the page's own answer, shown; the browser logs the failed fetch as a console error.
    page_log.console_errors = [e for e in page_log.console_errors if "401" not in e]
    page_log.assert_clean()


def test_gallery_lists_jobs_newest_first_with_previews_and_a_live_badge(
        api_url: str, api: httpx.Client, key: str, page: Any, page_log: PageLog):
    done = [_image(api, "first"), _image(api, "second")]
    for job_id in done:
        assert wait_for(api, job_id)["status"] == "completed"
    slow = _image(api, "slow", latency=3)
    _sign_in(page, api_url, key)
    cards = page.locator(".card")
    cards.nth(2).wait_for()
    assert [c.get_attribute("data-job-id") for c in cards.all()] == [slow, *done[::-1]]  # newest first
    for job_id in done:
        image = _card(page, job_id).locator("img.thumb")
        assert "/o/" in image.get_attribute("src")
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())

    # The running job's badge changes live, over its SSE stream, without a reload.
    assert _card(page, slow).locator(".badge").get_attribute("data-status") in ("queued", "processing")
    page.wait_for_selector(f'.card[data-job-id="{slow}"] .badge[data-status="completed"]', timeout=20_000)
    _card(page, slow).locator("img.thumb").wait_for()
    assert page.evaluate("performance.getEntriesByType('resource').some((e) => e.name.includes('/stream'))")
    # A job created after the page loaded shows up at the top.
    later = _image(api, "later")
    _card(page, later).wait_for(timeout=10_000)
    assert _card(page, later).evaluate("(el) => el === el.parentElement.firstElementChild")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded

    # Filters: by status.
    failed = _image(api, "doomed", fail="NSFW content detected")
    assert wait_for(api, failed)["status"] == "failed"
    page.select_option("#filter-status", "failed")
    page.wait_for_function(f"""() => {{
        const cards = [...document.querySelectorAll('.card')];
        return cards.length === 1 && cards[0].dataset.jobId === '{failed}'; }}""")
    page.select_option("#filter-status", "")
    _card(page, done[0]).wait_for()
    page_log.assert_clean()


def test_gallery_scrolls_on_the_cursor(api_url: str, api: httpx.Client, key: str, page: Any, page_log: PageLog):
    jobs = [_image(api, f"many {i}") for i in range(30)]  # past one page of 24
    for job_id in jobs:
        wait_for(api, job_id)
    _sign_in(page, api_url, key)
    page.locator(".card").nth(23).wait_for()
    page.locator(".card").last.scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelectorAll('.card').length === 30")
    assert page.locator("#load-more").is_hidden()
    page_log.assert_clean()


def test_job_page_shows_the_job_download_and_curl(api_url: str, api: httpx.Client, key: str, page: Any,
                                                  page_log: PageLog):
    job_id = _image(api, "a page of its own")
    job = wait_for(api, job_id)
    _sign_in(page, api_url, key)
    _card(page, job_id).locator("a").click()
    page.wait_for_url(f"**/ui#/jobs/{job_id}")
    page.locator('#job-status .badge[data-status="completed"]').wait_for()
    details = page.locator("#job-details").inner_text()
    assert job_id in details and "flux-schnell" in details and "fal" in details and "miss" in details
    cost = next(r["cost_cents"] for r in api.get("/usage").json()["usage"] if r["job_id"] == job_id)
    page.wait_for_function("() => !document.querySelector('#job-price').textContent.includes('held')")
    assert page.locator("#job-price").inner_text().startswith(f"${cost / 100:.2f}")
    assert page.locator("#download").get_attribute("href") == job["output"]["url"]
    # The request as the gateway holds it (GET /v1/jobs/{id}'s `request`), as text.
    request = json.loads(page.locator("#job-request").inner_text())
    assert request["prompt"].startswith("a page of its own") and page.locator("#job-provider").inner_text() == "fal"
    page.wait_for_function("() => document.querySelector('.output img').naturalWidth > 0")
    curl = page.locator("#curl").inner_text()
    assert f"/v1/jobs/{job_id}" in curl and "$GENGATE_API_KEY" in curl and key not in curl
    assert job["output"]["url"] in curl
    assert page.locator("#copy-curl").is_visible()
    assert page.locator("#cancel").count() == 0  # finished: nothing to cancel
    page.get_by_role("link", name="All jobs").click()
    _card(page, job_id).wait_for()
    page_log.assert_clean()


def test_cancel_a_running_job_from_its_page(api_url: str, api: httpx.Client, key: str, page: Any,
                                            page_log: PageLog):
    job_id = _image(api, "never finished", latency=30)
    _sign_in(page, api_url, key)
    page.goto(f"{api_url}/ui#/jobs/{job_id}")
    page.locator("#cancel").click()
    page.locator('#job-status .badge[data-status="cancelled"]').wait_for()
    assert page.locator("#cancel").count() == 0
    assert api.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    page_log.assert_clean()


def test_prompts_and_errors_are_text_never_html(api_url: str, api: httpx.Client, key: str, page: Any,
                                                page_log: PageLog):
    """The API returns no prompt (JobResponse has none): the user-controlled text a job carries to the
    page is its error, which here repeats the markup the request sent the provider."""
    job_id = _image(api, XSS, fail=f"refused: {XSS}")
    job = wait_for(api, job_id)
    assert job["status"] == "failed" and XSS in job["error"]
    _sign_in(page, api_url, key)
    _card(page, job_id).wait_for()
    page.goto(f"{api_url}/ui#/jobs/{job_id}")
    error = page.locator("#job-error")
    error.wait_for()
    assert XSS in error.inner_text()
    assert error.locator("script, img").count() == 0
    assert page.evaluate("window.__x") is None
    page_log.assert_clean()


def test_sign_out_forgets_the_key(api_url: str, api: httpx.Client, key: str, page: Any, page_log: PageLog):
    _image(api)
    _sign_in(page, api_url, key)
    page.locator(".card").first.wait_for()
    assert page.evaluate("sessionStorage.length") == 1
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.locator("#gallery").count() == 0
    page.reload()
    page.get_by_label("API key").wait_for()  # still signed out
    assert page.locator("#gallery").count() == 0
    page_log.assert_clean()


def test_keyboard_and_phone_width(api_url: str, api: httpx.Client, key: str, page: Any, page_log: PageLog):
    job_id = _image(api)
    wait_for(api, job_id)
    page.set_viewport_size({"width": 375, "height": 700})
    page.goto(f"{api_url}/ui")
    page.keyboard.type(key)  # the key field has the focus
    page.keyboard.press("Enter")
    _card(page, job_id).wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    _card(page, job_id).locator("a").focus()
    page.keyboard.press("Enter")
    page.locator("#job-details").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page_log.assert_clean()


def test_a_dropped_stream_resumes_after_the_last_event(api_url: str, api: httpx.Client, key: str, page: Any,
                                                       page_log: PageLog):
    """The stream's connection ends without a terminal event: the page reconnects with Last-Event-ID
    set to the last `id:` it read, and takes the events sent after it. (The stream here is played by
    the test, so the drop and the resumed events are exact.)"""
    job_id = _image(api, "followed", latency=30)
    job = api.get(f"/jobs/{job_id}").json()
    asked: list[str | None] = []

    def stream(route: Any) -> None:
        asked.append(route.request.headers.get("last-event-id"))
        if len(asked) == 1:  # one event, then the connection ends
            body = f'event: status\nid: 17-0\ndata: {json.dumps({**job, "status": "processing"})}\n\n'
        else:
            done = {**job, "status": "completed", "completed_at": job["created_at"]}
            body = f": keepalive\n\nevent: status\r\nid: 18-0\r\ndata: {json.dumps(done)}\r\n\r\n"
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    _sign_in(page, api_url, key)
    page.goto(f"{api_url}/ui#/jobs/{job_id}")
    page.locator("#job-details").wait_for()
    # From here on the job page is the only view, and it opens its stream anew.
    page.route(f"**/v1/jobs/{job_id}/stream", stream)
    page.reload()
    page.locator('#job-status .badge[data-status="completed"]').wait_for()
    assert asked[:2] == [None, "17-0"]
    api.delete(f"/jobs/{job_id}")
    page_log.assert_clean()
