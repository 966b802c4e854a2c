"""/ui's Keys & settings and Operators pages (issue 20) in headless Chromium, against the real API
and worker: create a key (shown once) and revoke it, rotate the webhook secret, save, replace and
delete a provider key (never shown back), and the operators' overview behind the admin key. Every
test also checks the page reached no other host, logged no error and broke no rule of its CSP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import PageLog, fits_phone_width, sign_in
from tests.conftest import ADMIN_KEY, wait_for


def _status(api_url: str, key: str) -> int:
    return httpx.get(f"{api_url}/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code


def _revoke(page: Any, key_id: str) -> None:
    page.get_by_role("button", name=f"Revoke key {key_id}").click()
    page.get_by_role("button", name="Yes, revoke").click()


def test_create_a_key_shown_once_then_revoke_it(page: Any, page_log: PageLog, api_url: str, key: str,
                                               api: httpx.Client):
    sign_in(page, api_url, key, "#/settings")
    rows = page.locator("#keys-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1 and "this tab" in rows.first.inner_text()
    page.get_by_role("button", name="Create a key").click()
    created = page.locator("#created-key").inner_text()
    assert created.startswith("gg_live_") and _status(api_url, created) == 200
    new_id = created.split("_")[2]
    assert rows.count() == 2
    assert {k["key_id"] for k in api.get("/keys").json()["keys"]} >= {new_id}
    # Shown once: the view opened again lists the key by its id only.
    page.goto(f"{api_url}/ui#/jobs")
    page.goto(f"{api_url}/ui#/settings")
    page.locator("#keys-table tbody tr").nth(1).wait_for()
    assert created not in page.content()
    _revoke(page, new_id)
    page.locator(f'#keys-table tr:has(code[data-key-id="{new_id}"]) >> text=revoked').wait_for()
    assert _status(api_url, created) == 401
    page_log.assert_clean()


def test_the_last_key_is_kept_and_revoking_this_tabs_key_signs_out(page: Any, page_log: PageLog, api_url: str,
                                                                    key: str, api: httpx.Client):
    mine = key.split("_")[2]
    sign_in(page, api_url, key, "#/settings")
    page.locator("#keys-table tbody tr").first.wait_for()
    _revoke(page, mine)
    page.get_by_role("alert").filter(has_text="last active key").wait_for()  # the API's 409, as text
    assert _status(api_url, key) == 200
    other = api.post("/keys").json()["key"]
    page.reload()
    page.locator("#keys-table tbody tr").nth(1).wait_for()
    _revoke(page, mine)
    page.locator("#sign-in").wait_for()  # signed out: the tab's key is gone
    assert _status(api_url, key) == 401 and _status(api_url, other) == 200
    page_log.assert_clean(409)


def test_rotate_the_webhook_secret(page: Any, page_log: PageLog, api_url: str, key: str):
    sign_in(page, api_url, key, "#/settings")
    shown = []
    for _ in range(2):
        page.get_by_role("button", name="Rotate").click()
        page.get_by_role("button", name="Yes, rotate").click()
        value = page.locator("#webhook-secret-value")
        if shown:
            expect(value).not_to_have_text(shown[0])
        shown.append(value.inner_text())
    assert all(s.startswith("whsec_") for s in shown) and shown[0] != shown[1]
    page_log.assert_clean()


def test_save_replace_and_delete_a_provider_key_never_shown_back(page: Any, page_log: PageLog, api_url: str,
                                                                 key: str, api: httpx.Client):
    secret = f"fal-key-{uuid.uuid4().hex}"
    sign_in(page, api_url, key, "#/settings")
    fal = page.locator('form[data-provider="fal"]')
    page.locator("#provider-key-fal").fill(secret)
    fal.get_by_role("button", name="Save").click()
    page.locator('form[data-provider="fal"] [data-state="saved"]').wait_for()
    assert secret not in page.content() and page.locator("#provider-key-fal").input_value() == ""
    saved = {p["provider"]: p["saved"] for p in api.get("/provider-keys").json()["provider_keys"]}
    assert saved["fal"] and not saved["replicate"]
    # A key that cannot travel in a header is refused with the API's message, shown as text.
    page.locator("#provider-key-fal").fill("bad\u0007key")
    fal.get_by_role("button", name="Replace").click()
    fal.get_by_role("alert").filter(has_text="printable ASCII").wait_for()
    fal.get_by_role("button", name="Delete the saved fal key").click()
    page.get_by_role("button", name="Yes, delete").click()
    page.locator('form[data-provider="fal"] [data-state="none"]').wait_for()
    assert not any(p["saved"] for p in api.get("/provider-keys").json()["provider_keys"])
    page_log.assert_clean(400)


def test_operators_page_needs_the_admin_key_and_shows_failures_as_text(page: Any, page_log: PageLog, api_url: str,
                                                                      key: str, api: httpx.Client):
    marker = "<script>window.__x=1</script><img src=x onerror=\"window.__x=2\">"
    failed = api.post("/image", json={"model": "flux-schnell", "prompt": f"ops {uuid.uuid4().hex}",
                                      "provider_options": {"sim": {"fail": marker}}}).json()["job_id"]
    assert wait_for(api, failed)["status"] == "failed"
    sign_in(page, api_url, key, "#/operators")
    page.locator("#operators-locked").wait_for()
    page.goto(f"{api_url}/ui#/settings")
    page.get_by_label("Admin key").fill("not-the-admin-key")
    page.get_by_role("button", name="Use for this tab").click()
    page.goto(f"{api_url}/ui#/operators")
    page.locator("#operators-error").filter(has_text="refused").wait_for()
    page.goto(f"{api_url}/ui#/settings")
    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Use for this tab").click()
    page.goto(f"{api_url}/ui#/operators")
    row = page.locator(f'#ops-failures-table tr:has-text("{failed}")')
    row.wait_for()
    assert marker in row.inner_text()  # the provider's message, as text
    assert page.evaluate("window.__x") is None
    assert "alive" in page.locator("#ops-workers-table").inner_text()
    assert "media" in page.locator("#ops-queues-table").inner_text()
    assert "fal" in page.locator("#ops-providers-table").inner_text()
    page.set_viewport_size({"width": 375, "height": 800})
    assert fits_phone_width(page)
    page.goto(f"{api_url}/ui#/settings")
    page.locator("#keys-table").wait_for()
    assert fits_phone_width(page)
    page_log.assert_clean(401)
