"""Browser tests: pages of the gateway opened in headless Chromium, driven by Playwright for Python.

The browser is the system's Chromium (Debian's `chromium`, which `python3 dev.py test` installs when
run as root), or the binary GENGATE_TEST_CHROMIUM names: never a build of Playwright's own, which
`playwright install` would download. Without Playwright or a Chromium, the tests that open a page
skip, saying which is missing; the rest of the suite does not depend on either.

Each page may reach only this machine: every request to another host is aborted and recorded
(`PageLog.offsite`), so a page that needs a CDN shows it, as a failed test, here rather than on an
operator's network without the public internet.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Names of the binary: Debian's package, other distributions' and Google's build.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Collects the page's CSP violations, as the page itself sees them. An init script runs before any
# script of the page and is not subject to the page's CSP.
_RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(
    `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile || ""}:${e.lineNumber || ""})`));
"""


def chromium_binary() -> str | None:
    named = os.environ.get("GENGATE_TEST_CHROMIUM")
    if named:
        return shutil.which(named)
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module. Not for the session: Playwright's sync API keeps an
    event loop running in the main thread while it is started, and every later test that calls
    `asyncio.run()` (the async client, the SSE tests) would fail with "cannot be called from a
    running event loop"; stopped after each module, it leaves none behind."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip('Playwright for Python is not installed (pip install -e ".[test]", or python3 dev.py test)')
    binary = chromium_binary()
    if binary is None and os.environ.get("GENGATE_TEST_CHROMIUM"):
        pytest.skip(f"GENGATE_TEST_CHROMIUM={os.environ['GENGATE_TEST_CHROMIUM']} is no executable")
    if binary is None:
        pytest.skip("no Chromium on this machine (Debian/Ubuntu: apt-get install -y chromium, which "
                    "`python3 dev.py test` does as root; or set GENGATE_TEST_CHROMIUM to a Chromium binary)")
    with sync_playwright() as playwright:
        # Chromium's sandbox cannot start as root (nor in many containers): without the sandbox it
        # opens only this gateway's own pages, which is what the sandbox would protect us from.
        launched = playwright.chromium.launch(executable_path=binary, headless=True, chromium_sandbox=False,
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class PageLog:
    """What a page did wrong: requests to other hosts (aborted), console errors, uncaught errors."""

    offsite: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    page: Any = None

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations || []")

    def assert_clean(self, *refused: int) -> None:
        """`refused`: HTTP statuses the test made the API answer on purpose (a 409 the page shows,
        say), which Chromium logs as console errors; any other console error fails."""
        assert self.offsite == [], "the page tried to reach other hosts"
        assert self.csp_violations() == [], "the page broke its Content-Security-Policy"
        expected = tuple(f"the server responded with a status of {status} " for status in refused)
        errors = [e for e in self.console_errors if not any(x in e for x in expected)]
        assert errors == [], "the page logged errors"
        assert self.page_errors == [], "the page threw"


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser: Any, page_log: PageLog) -> Iterator[Any]:
    """A fresh page (its own context: no cookies or cache from another test) that may reach only
    127.0.0.1 and localhost, recording into `page_log`."""
    context = browser.new_context()
    context.set_default_timeout(15_000)

    def only_local(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            page_log.offsite.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", only_local)
    context.add_init_script(_RECORD_CSP_VIOLATIONS)
    opened = context.new_page()
    opened.on("console", lambda msg: msg.type == "error" and page_log.console_errors.append(
        f"{msg.text} ({msg.location.get('url', '')})"))
    opened.on("pageerror", lambda error: page_log.page_errors.append(str(error)))
    page_log.page = opened
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def key(rds: Any, worker: Any) -> str:
    """A fresh account's API key, with the session's worker running."""
    from tests.conftest import new_key

    return new_key(rds)


@pytest.fixture
def api(api_url: str, key: str) -> Iterator[Any]:
    """An HTTP client on /v1 with `key`: what the page shows is checked against what the API says."""
    import httpx

    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
        yield client


def sign_in(page: Any, api_url: str, key: str, view: str = "#/jobs") -> None:
    """Sign in on /ui with `key`, then open `view` (a fragment such as #/settings)."""
    page.goto(f"{api_url}/ui{view}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#who").wait_for(state="visible")


def fits_phone_width(page: Any) -> bool:
    """At the current viewport, the page does not scroll sideways."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
