"""/ui#/usage, the dashboard's Usage page (issue 20), in headless Chromium against the real API and
worker: the balance, a period's spend per UTC day as a chart, per model, its total checked against
its records, and the records as a CSV file. Every test also checks the page reached no other host,
logged no error and broke no rule of its Content-Security-Policy.

Jobs run for real where a few are enough. A busy period (more records than one page of 1,000) and
records the API cannot produce from a request (text a spreadsheet would run, markup) are written
into Redis as the completing transition leaves them, as tests/test_accounts.py does."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from gengate.jobs import keys
from gengate.jobs.apikeys import create_account, create_key
from tests.browser.conftest import PageLog
from tests.conftest import wait_for

DAY_MS = 86_400_000


def _image(api: httpx.Client, model: str, prompt: str) -> str:
    answer = api.post("/image", json={"model": model, "prompt": prompt})
    assert answer.status_code in (200, 202), answer.text  # a cache hit answers completed at once
    return answer.json()["job_id"]


def _run_jobs(api: httpx.Client) -> None:
    """Two models' jobs to completion, and one identical request again: a cache hit, costing 0."""
    tag = uuid.uuid4().hex[:8]
    first = _image(api, "flux-schnell", f"harbour {tag}")
    jobs = [first, _image(api, "flux-schnell", f"meadow {tag}"), _image(api, "flux-dev", f"canyon {tag}")]
    for job_id in jobs:
        job = wait_for(api, job_id)
        assert job["status"] == "completed", job
    hit = wait_for(api, _image(api, "flux-schnell", f"harbour {tag}"))
    assert hit["status"] == "completed" and hit["cache"]["hit"] is True


def _pages(api: httpx.Client, **params: str) -> dict:
    """The whole period through the API, as the page reads it: its records and total."""
    records, cursor = [], None
    while True:
        body = api.get("/usage", params={**params, "limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        records += body["usage"]
        cursor = body["next_cursor"]
        if cursor is None:
            return {"usage": records, "total_cents": body["total_cents"]}


def _money(cents: int) -> str:
    return f"-${-cents / 100:,.2f}" if cents < 0 else f"${cents / 100:,.2f}"


def _open_usage(page: Any, api_url: str, key: str) -> None:
    page.goto(f"{api_url}/ui#/usage")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    _shown(page)


def _shown(page: Any) -> None:
    """Waits for the period's answer: the page's total (and the records' tables, unless empty)."""
    page.locator("#period-total").wait_for()


def _show_period(page: Any, first: str, last: str) -> None:
    page.locator("#period-total").wait_for()
    page.fill("#usage-from", first)
    page.fill("#usage-to", last)
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(f"""() => {{ const t = document.querySelector('#usage-results');
        return t && t.textContent.includes('{first} to {last}'); }}""")


def _model_rows(page: Any) -> dict[str, list[str]]:
    """The per-model table: model (provider:model) -> [jobs, spend, cache hits, not charged]."""
    rows = page.locator("#model-table tbody tr")
    return {row.get_attribute("data-model"): [c.inner_text() for c in row.locator("td.num").all()]
            for row in rows.all()}


def _expected_rows(records: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[int]] = {}
    for r in records:
        jobs, cents, hits, free = out.get(r["model"], [0, 0, 0, 0])
        out[r["model"]] = [jobs + 1, cents + r["cost_cents"], hits + r["cache_hit"],
                           free + (not r["cache_hit"] and r["cost_cents"] == 0)]
    return {m: [f"{j:,}", _money(c), f"{h:,}", f"{f:,}"] for m, (j, c, h, f) in out.items()}


def _csv_value(value: Any) -> str:
    """A record's field as the CSV holds it: JSON's spelling, and text a spreadsheet would run as a
    formula behind an apostrophe."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
    return str(value)


def _download_csv(page: Any, first: str, last: str) -> tuple[str, list[dict[str, str]]]:
    with page.expect_download() as info:
        page.locator("#export-csv").click()
    download = info.value
    assert download.suggested_filename == f"gengate-usage-{first}-to-{last}.csv"
    raw = Path(download.path()).read_bytes().decode("utf-8")
    return raw, list(csv.DictReader(io.StringIO(raw, newline="")))


def _seed(rds: redis.Redis, account: str, records: list[tuple[int, dict]], *, count_days: bool = True) -> None:
    """(completion ms, record) written as the completing transition leaves them: the record in the
    account's usage zset and its cents on its UTC day (unless `count_days` is false)."""
    pipe = rds.pipeline(transaction=False)
    for ms, record in records:
        pipe.zadd(keys.account_usage(account), {orjson.dumps(record): ms})
        if count_days and record["cost_cents"]:
            pipe.hincrby(keys.account_usage_days(account), ms // DAY_MS, record["cost_cents"])
    pipe.execute()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record(created: datetime, cents: int, model: str = "fal:flux-schnell", **fields: Any) -> dict:
    return {"job_id": f"job_{uuid.uuid4().hex}", "model": model, "capability": "image", "cost_cents": cents,
            "cache_hit": False, "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            **fields}


def test_usage_page_shows_what_the_api_says(api_url: str, api: httpx.Client, key: str, page: Any,
                                           page_log: PageLog):
    _run_jobs(api)
    today = datetime.now(timezone.utc).date()
    first, last = (today - timedelta(days=29)).isoformat(), today.isoformat()
    _open_usage(page, api_url, key)
    assert page.input_value("#usage-from") == first and page.input_value("#usage-to") == last  # the last 30 days
    usage = api.get("/usage", params={"from": first, "to": last}).json()
    records = usage["usage"]
    assert {r["model"] for r in records} == {"fal:flux-schnell", "fal:flux-dev"} and len(records) == 4

    balance = api.get("/balance").json()["balance_cents"]
    page.wait_for_function("() => document.querySelector('#balance').dataset.cents !== undefined")
    assert page.locator("#balance").inner_text() == _money(balance)
    assert page.locator("#period-total").inner_text() == _money(usage["total_cents"])
    assert page.locator("#total-check").get_attribute("data-ok") == "true"

    # Per model: jobs, spend, cache hits (the repeat) and other jobs not charged (none here).
    assert _model_rows(page) == _expected_rows(records)
    assert _model_rows(page)["fal:flux-schnell"][2] == "1"

    # One bar per day of the period; today's carries today's spend, with its tooltip.
    bars = page.locator("#spend-chart svg rect.bar")
    assert bars.count() == 30
    assert [b.get_attribute("data-day") for b in bars.all()][::29] == [first, last]
    assert all(r["completed_at"] for r in records)  # the day each counts on, as the chart draws it
    spent = sum(r["cost_cents"] for r in records if r["completed_at"].startswith(last))
    assert spent == usage["total_cents"] > 0
    assert int(bars.last.get_attribute("data-cents")) == spent
    assert float(bars.last.get_attribute("height")) > 0 and float(bars.first.get_attribute("height")) == 0
    assert page.locator(f'#spend-chart g.day[data-day="{last}"] > title').text_content() == f"{last}: {_money(spent)}, 4 jobs"
    chart = page.locator("#spend-chart svg")
    assert chart.get_attribute("role") == "img" and _money(spent) in chart.get_attribute("aria-label")
    assert page.locator("#spend-chart svg .axis-y text").first.text_content() == "$0.00"
    # The same numbers as a table, behind a disclosure.
    assert page.locator("#day-table tbody tr").count() == 30
    page.locator(".per-day summary").click()
    assert page.locator(f'#day-table tr[data-day="{last}"] td').all_inner_texts() == ["4", _money(spent)]

    # The CSV: a header row and exactly the API's records, every field.
    raw, rows = _download_csv(page, first, last)
    assert raw.startswith("job_id,model,capability,cost_cents,cache_hit,created_at,completed_at\r\n")
    assert raw.endswith("\r\n")
    assert rows == [{k: _csv_value(v) for k, v in r.items()} for r in records]
    page_log.assert_clean()


def test_a_busy_period_is_read_page_by_page(api_url: str, rds: redis.Redis, page: Any,
                                            page_log: PageLog):
    """2,500 records over three days (three pages of the API), some costing nothing, one model's jobs
    created before the period and completed on its first day, and text fields a spreadsheet would
    run or a browser would parse: all of it counted, charted and exported, as text."""
    account = create_account(rds, email="busy@example.com")
    key = create_key(rds, account)
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    ms = int(start.timestamp() * 1000)
    seeded = [(ms + (i // 1000) * DAY_MS + i, _record(start + timedelta(days=i // 1000, seconds=i), i % 4,
                                                     completed_at=_iso(ms + (i // 1000) * DAY_MS + i)))
              for i in range(2500)]
    # As records from before `completed_at` was written: charted by their creation.
    odd = [
        _record(start - timedelta(seconds=5), 7, model="fal:<img src=x onerror=window.__x=1>"),
        _record(start, 2, model='=HYPERLINK("https://example.com","click"), then "more"'),
        _record(start, 0, model="@SUM(1+1)", job_id="-1+2", capability="+image", cache_hit=True),
    ]
    _seed(rds, account, seeded + [(ms + 50_000 + i, r) for i, r in enumerate(odd)])
    asked: list[str] = []
    page.on("request", lambda r: "/v1/usage" in r.url and asked.append(r.url))
    _open_usage(page, api_url, key)
    _show_period(page, "2026-03-01", "2026-03-04")

    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {key}"}) as api:
        usage = _pages(api, **{"from": "2026-03-01", "to": "2026-03-04"})
    records = usage["usage"]
    assert len(records) == 2503
    assert sum("cursor=" in url for url in asked) == 2, "followed next_cursor to the end"
    assert page.locator("#period-total").inner_text() == _money(usage["total_cents"])
    assert page.locator("#total-check").get_attribute("data-ok") == "true"
    assert page.locator("#usage-capped").count() == 0
    assert "1 job was created before the period" in page.locator("#usage-early").inner_text()
    assert _model_rows(page) == _expected_rows(records)
    assert "<img src=x onerror=window.__x=1>" in page.locator("#model-table tbody th").all_inner_texts()
    assert page.locator("#model-table img, #model-table script").count() == 0
    assert page.evaluate("window.__x") is None

    bars = {b.get_attribute("data-day"): int(b.get_attribute("data-cents"))
            for b in page.locator("#spend-chart rect.bar").all()}
    per_day = {d: 0 for d in ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04")}
    for r in records:
        per_day[max(r.get("completed_at", r["created_at"])[:10], "2026-03-01")] += r["cost_cents"]
    assert bars == per_day and per_day["2026-03-04"] == 0

    raw, rows = _download_csv(page, "2026-03-01", "2026-03-04")
    assert rows == [{"completed_at": "", **{k: _csv_value(v) for k, v in r.items()}} for r in records]
    # Quoted as RFC 4180 says, and neutralised: the formula is text to a spreadsheet.
    assert '"\'=HYPERLINK(""https://example.com"",""click""), then ""more"""' in raw
    assert "\r\n'-1+2,'@SUM(1+1),'+image,0,true," in raw
    page_log.assert_clean()


def test_records_that_do_not_add_up_say_so(api_url: str, rds: redis.Redis, page: Any,
                                           page_log: PageLog):
    """A record whose cents never reached its day's total (as if the total were written apart from
    it): the page shows the gateway's total and says the records add up to something else."""
    account = create_account(rds, email="odd@example.com")
    key = create_key(rds, account)
    day = datetime(2026, 4, 2, 12, tzinfo=timezone.utc)
    ms = int(day.timestamp() * 1000)
    _seed(rds, account, [(ms, _record(day, 5))])
    _seed(rds, account, [(ms + 1, _record(day, 3))], count_days=False)
    _open_usage(page, api_url, key)
    _show_period(page, "2026-04-01", "2026-04-03")
    assert page.locator("#period-total").inner_text() == "$0.05"
    check = page.locator("#total-check")
    assert check.get_attribute("data-ok") == "false" and "$0.08" in check.inner_text()
    page_log.assert_clean()


def test_an_empty_period_and_a_wrong_one(api_url: str, key: str, page: Any, page_log: PageLog):
    _open_usage(page, api_url, key)
    empty = page.locator("#usage-empty")
    empty.wait_for()  # a new account: nothing in the last 30 days either
    _show_period(page, "2020-01-01", "2020-01-31")
    assert "No completed jobs between 2020-01-01 and 2020-01-31" in empty.inner_text()
    assert page.locator("#export-csv").count() == 0 and page.locator("#spend-chart").count() == 0
    assert page.locator("#period-total").inner_text() == "$0.00"

    page.fill("#usage-from", "2020-02-01")
    page.get_by_role("button", name="Show").click()
    assert "end on or after" in page.locator("#usage-error").inner_text()
    page.fill("#usage-from", "2018-01-01")
    page.get_by_role("button", name="Show").click()
    assert "at most 366 days" in page.locator("#usage-error").inner_text()
    assert page.locator("#usage-from").get_attribute("aria-invalid") == "true"
    page_log.assert_clean()


def test_keyboard_and_phone_width(api_url: str, api: httpx.Client, key: str, page: Any, page_log: PageLog):
    _run_jobs(api)
    page.set_viewport_size({"width": 375, "height": 700})
    page.goto(f"{api_url}/ui#/usage")
    page.keyboard.type(key)  # the key field has the focus
    page.keyboard.press("Enter")
    page.locator("#model-table").wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, "no sideways scrolling of the page"
    # The chart fits the screen; the model table, wider than it, scrolls in its own box.
    assert page.locator("#spend-chart svg").bounding_box()["width"] <= 375
    scroller = page.locator("#model-table").locator("xpath=..")
    assert scroller.evaluate("(el) => el.scrollWidth > el.clientWidth && getComputedStyle(el).overflowX === 'auto'")
    assert scroller.get_attribute("tabindex") == "0"

    # Keyboard: a new period through the form, the per-day table opened, the CSV saved.
    today = datetime.now(timezone.utc).date()
    page.focus("#usage-from")
    page.fill("#usage-from", (today - timedelta(days=6)).isoformat())
    page.focus("#usage-to")
    for _ in range(4):  # past the date field's own parts (month, day, year) to the button
        if page.evaluate("document.activeElement.textContent") == "Show":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Show"
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#spend-chart rect.bar').length === 7")
    page.focus(".per-day summary")
    page.keyboard.press("Enter")
    assert page.locator(".per-day").get_attribute("open") is not None
    page.focus("#export-csv")
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert info.value.suggested_filename.endswith(f"-to-{today.isoformat()}.csv")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page_log.assert_clean()
