"""/docs, the interactive API docs: served by the gateway itself, whole, with no request to another
host (no CDN), under a strict Content-Security-Policy, and showing every operation of /openapi.json."""

from __future__ import annotations

import html.parser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import redis

from gengate.api.routes.docs import CSP
from tests.browser.conftest import PageLog
from tests.conftest import new_key


class _Refs(html.parser.HTMLParser):
    """The URLs a page loads (src=, href=) and the bodies of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        self._in_script = tag == "script"
        if tag == "script" and not dict(attrs).get("src"):
            self.inline_scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and self.inline_scripts:
            self.inline_scripts[-1] += data


def test_docs_page_loads_only_local_files_under_a_strict_csp(api_url: str):
    """No browser needed: the page's HTML names only files of this gateway, has no inline script,
    and it and each of those files carry the CSP, which allows nothing inline and nothing elsewhere."""
    page = httpx.get(f"{api_url}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP and "*" not in CSP
    refs = _Refs()
    refs.feed(page.text)
    assert refs.inline_scripts == [], "an inline script would need 'unsafe-inline'"
    assert refs.urls, "the page loads Swagger UI's files"
    for ref in refs.urls:
        assert not urlsplit(ref).scheme and not ref.startswith("//"), f"{ref} is not a file of this gateway"
        url = urljoin(f"{api_url}/docs", ref)
        asset = httpx.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-security-policy"] == CSP, url
        assert asset.headers["x-content-type-options"] == "nosniff", url
    kinds = {urlsplit(ref).path.rsplit("/", 1)[-1]: httpx.get(urljoin(f"{api_url}/docs", ref)).headers["content-type"]
             for ref in refs.urls}
    assert kinds["swagger-ui-bundle.js"].startswith("text/javascript")
    assert kinds["swagger-ui.css"].startswith("text/css")


def test_docs_serves_no_other_file_and_no_cdn_pages(api_url: str):
    for path in ("/docs/static/README.md", "/docs/static/..%2Fdocs.html", "/docs/static/swagger-ui%2FLICENSE",
                 "/redoc", "/docs/oauth2-redirect"):
        answer = httpx.get(f"{api_url}{path}")
        assert answer.status_code == 404, path
    assert httpx.get(f"{api_url}/docs/", follow_redirects=True).url.path == "/docs"


def _operations(api_url: str) -> set[tuple[str, str]]:
    spec = httpx.get(f"{api_url}/openapi.json").json()
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


def test_docs_page_lists_every_operation_without_the_network(api_url: str, page: Any, page_log: PageLog):
    page.goto(f"{api_url}/docs")
    page.wait_for_selector(".opblock-summary")
    assert page.locator(".info .title").inner_text().startswith("gengate")
    shown = {(block.locator(".opblock-summary-method").inner_text().strip(),
              block.locator(".opblock-summary-path").get_attribute("data-path"))
             for block in page.locator(".opblock").all()}
    assert shown == _operations(api_url)
    assert "/v1/image" in page.locator("#swagger-ui").inner_text()
    page_log.assert_clean()


def test_an_operation_opens_and_try_it_out_reaches_the_gateway(api_url: str, rds: redis.Redis, page: Any,
                                                               page_log: PageLog):
    """Opening createImage shows its request example; with a key entered in "Authorize", "Try it
    out" on listModels calls this gateway and shows its answer, so the CSP lets the page reach its own
    origin."""
    page.goto(f"{api_url}/docs")
    image = page.locator("#operations-Generation-createImage")
    image.locator(".opblock-summary").click()
    body = image.locator(".opblock-body")
    body.locator(".opblock-section-request-body").wait_for()
    assert "prompt" in body.inner_text()

    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").fill(new_key(rds))
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()
    models = page.locator("#operations-Reference-listModels")
    models.locator(".opblock-summary").click()
    models.locator("button.try-out__btn").click()
    models.locator("button.execute").click()
    answer = models.locator(".live-responses-table .response .response-col_status").first
    answer.wait_for()
    assert answer.inner_text().strip() == "200"
    assert "flux-pro" in models.locator(".live-responses-table .response .response-col_description").first.inner_text()
    page_log.assert_clean()
