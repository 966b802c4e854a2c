"""/ui#/playground, the dashboard's Playground (issue 20), and the Process section of a job's page, in
headless Chromium against the real API, worker and provider simulators. Each test submits from the
page as a user would, follows the job live, and checks what reached the API; each ends by checking
the page reached no other host, logged no error and broke no rule of its Content-Security-Policy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from gengate.adapters.elevenlabs import VOICES as ELEVENLABS_VOICE_IDS
from tests.browser.conftest import PageLog, sign_in
from tests.conftest import sim_requests, wait_for

XSS = "<script>window.__x=1</script><img src=x onerror=\"window.__x=2\">"
# Everything a shell or a Python string could trip on: quotes, $, backticks, backslashes, markup.
AWKWARD = "it's a \"quoted\" $HOME `date` \\n back\\slash <script>alert(1)</script> ünïcode"


def _marker() -> str:
    return uuid.uuid4().hex[:10]


def _open(page: Any, api_url: str, key: str) -> None:
    """Sign in, then open the Playground from the navigation (its form is built once /v1/models has
    answered)."""
    sign_in(page, api_url, key)
    page.get_by_role("link", name="Playground").click()
    page.locator("#pg-model").wait_for()


def _capability(page: Any, name: str) -> None:
    page.locator(f'label[for="pg-cap-{name}"]').click()
    page.wait_for_function(f"() => document.querySelector('#pg-form')?.getAttribute('aria-label') === '{name} request'")


def _options(page: Any, options: dict) -> None:
    page.locator(".pg-advanced summary").click()
    page.locator("#pg-options").fill(json.dumps(options))


def _submit(page: Any) -> str:
    """Generate; the id of the new job the page links to (in place of an earlier one's)."""
    link = page.locator("#pg-job-link")
    before = link.inner_text() if link.count() else ""
    page.locator("#pg-submit").click()
    page.wait_for_function("(before) => (document.querySelector('#pg-job-link')?.textContent || before) !== before",
                           arg=before)
    return link.inner_text()


def _wait_status(page: Any, status: str, timeout: float = 30_000) -> None:
    page.wait_for_selector(f'#pg-status .badge[data-status="{status}"]', timeout=timeout)


def _sent_body(page: Any) -> dict:
    """The JSON body the curl snippet sends (the -d argument, a single-quoted shell word)."""
    curl = page.locator("#pg-curl").inner_text()
    word = re.search(r"-d '((?:[^']|'\\'')*)'$", curl, re.S).group(1)
    return json.loads(word.replace("'\\''", "'"))


MODULES = ("playground.js", "playform.js", "pricing.js", "progress.js", "snippets.js", "upload.js", "mediatools.js")


def test_the_playground_modules_write_no_html_and_no_inline_style(api_url: str):
    """No browser needed: each module is served as JavaScript, and none writes HTML from a string or
    sets an inline style (the CSP's style-src 'self' would refuse it)."""
    for name in MODULES:
        answer = httpx.get(f"{api_url}/ui/static/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/javascript"), name
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\.style\b|\bstyle:|eval\(",
                             answer.text), name


def test_image_submitted_followed_live_and_previewed(api_url: str, api: httpx.Client, key: str, page: Any,
                                                     page_log: PageLog):
    _open(page, api_url, key)
    # The picker shows each image model with its modes and price, from /v1/models.
    models = {m["name"]: m for m in api.get("/models", params={"capability": "image"}).json()["models"]}
    labels = page.locator("#pg-model option").all_inner_texts()
    assert len(labels) == len(models)
    assert "flux-schnell — text-to-image — $0.01 per image" in labels
    page.select_option("#pg-model", "flux-schnell")
    assert "$0.01 per image" in page.locator("#pg-model-info").inner_text()
    ratios = page.locator("#pg-aspect-ratio option").evaluate_all("(os) => os.map((o) => o.value)")
    assert ratios == ["", *models["flux-schnell"]["parameters"]["text-to-image"]["aspect_ratios"]]
    assert page.locator("#pg-mode").is_hidden()  # one mode: nothing to choose
    assert page.locator("#pg-duration").count() == 0 and page.locator(".pg-drop").count() == 0

    prompt = f"a lighthouse at dusk {_marker()}"
    page.locator("#pg-prompt").fill(prompt)
    page.select_option("#pg-aspect-ratio", "16:9")
    _options(page, {"sim": {"latency": 2}})
    job_id = _submit(page)
    # Live, over the job's stream: processing while the provider works, then completed, no reload.
    _wait_status(page, "processing", 10_000)
    _wait_status(page, "completed")
    steps = page.locator("#pg-steps li").evaluate_all("(ls) => ls.map((l) => l.dataset.status)")
    assert steps[-2:] == ["processing", "completed"]
    image = page.locator("#pg-outcome img")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "completed" and job["model"] == "fal:flux-schnell"
    assert image.get_attribute("src") == job["output"]["url"]
    assert _sent_body(page) == {"model": "flux-schnell", "prompt": prompt, "aspect_ratio": "16:9",
                                "provider_options": {"sim": {"latency": 2}}}
    assert key not in page.locator("#pg-curl").inner_text() + page.locator("#pg-python").inner_text()
    page.locator("#pg-copy-curl").click()  # copied, or selected for Ctrl-C where the clipboard is refused
    page.wait_for_function("() => /Copied|Selected/.test(document.querySelector('#pg-copy-curl').parentElement.textContent)")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("performance.getEntriesByType('resource').some((e) => e.name.includes('/stream'))")
    page_log.assert_clean()


def test_a_model_on_two_providers_can_start_on_either(api_url: str, api: httpx.Client, key: str, page: Any,
                                                      page_log: PageLog):
    """flux-pro runs on fal and Replicate (issue 19): the picker offers each with its price, and the
    choice becomes the request's provider_order (that provider first, the other as its fallback)."""
    _open(page, api_url, key)
    page.select_option("#pg-model", "flux-pro")
    offered = page.locator("#pg-provider option").evaluate_all("(os) => os.map((o) => o.value)")
    assert offered == ["", "fal", "replicate"]
    page.select_option("#pg-provider", "replicate")
    assert "$0.04 per image" in page.locator("#pg-price").inner_text()  # Replicate's price, not fal's $0.05
    prompt = f"a paper boat {_marker()}"
    page.locator("#pg-prompt").fill(prompt)
    job_id = _submit(page)
    _wait_status(page, "completed")
    job = api.get(f"/jobs/{job_id}").json()
    assert job["provider"] == "replicate" and job["routes"] == ["fal"] and job["price_cents"] == 4
    assert _sent_body(page)["provider_order"] == ["replicate", "fal"]
    assert '"provider_order":["replicate","fal"]' in page.locator("#pg-curl").inner_text().replace(" ", "")
    page.select_option("#pg-model", "recraft-v3")  # one provider: nothing to choose
    assert page.locator("#pg-provider").is_hidden()
    page_log.assert_clean()


def test_video_with_the_models_durations_and_a_playable_preview(api_url: str, api: httpx.Client, key: str,
                                                                page: Any, page_log: PageLog):
    _open(page, api_url, key)
    _capability(page, "video")
    page.select_option("#pg-model", "kling-v3")
    spec = next(m for m in api.get("/models").json()["models"] if m["name"] == "kling-v3")
    modes = page.locator("#pg-mode option").evaluate_all("(os) => os.map((o) => o.value)")
    assert modes == spec["modes"] and page.locator("#pg-mode").is_visible()
    rules = spec["parameters"]["text-to-video"]
    assert page.locator("#pg-duration option").evaluate_all("(os) => os.map((o) => o.value)") == [
        "", *map(str, rules["durations"])]
    assert page.locator("#pg-aspect-ratio option").evaluate_all("(os) => os.map((o) => o.value)") == [
        "", *rules["aspect_ratios"]]
    # image-to-video takes an image and no aspect ratio (the image decides).
    page.select_option("#pg-mode", "image-to-video")
    assert page.locator("#pg-aspect-ratio").count() == 0 and page.locator(".pg-drop").count() == 1
    page.select_option("#pg-mode", "text-to-video")
    page.locator("#pg-prompt").fill(f"waves on cliffs {_marker()}")
    page.select_option("#pg-duration", "3")
    page.select_option("#pg-aspect-ratio", "9:16")
    assert page.locator("#pg-price").inner_text().startswith("Price of this request: $0.30")
    _submit(page)
    _wait_status(page, "completed")
    video = page.locator("#pg-outcome video")
    assert "/o/" in video.get_attribute("src")
    page.wait_for_function("(v) => v.readyState >= 1", arg=video.element_handle(), timeout=15_000)
    assert _sent_body(page)["duration"] == 3
    page_log.assert_clean()


def test_speech_with_a_voice_from_the_picker(api_url: str, api: httpx.Client, key: str, page: Any,
                                             page_log: PageLog, sim: httpx.Client):
    _open(page, api_url, key)
    _capability(page, "speech")
    voices = api.get("/voices").json()["voices"]
    assert page.locator("#pg-voice option").evaluate_all("(os) => os.map((o) => o.value)") == [
        v["voice_id"] for v in voices]
    page.select_option("#pg-model", "eleven_flash_v2_5")
    marker = _marker()
    page.locator("#pg-prompt").fill(f"Hello from the playground {marker}")
    page.select_option("#pg-voice", label="Josh")
    assert "per 1,000 characters" in page.locator("#pg-price").inner_text()
    job_id = _submit(page)
    _wait_status(page, "completed")
    spoken = page.locator("#pg-outcome audio").get_attribute("src")
    assert spoken == api.get(f"/jobs/{job_id}").json()["output"]["url"]
    assert _sent_body(page)["voice"] == "josh"
    sent = sim_requests(sim, marker, "elevenlabs")
    assert [r["voice_id"] for r in sent] == [ELEVENLABS_VOICE_IDS["josh"]]

    # Its audio, transcribed: an input given by URL, and a text output shown as text.
    _capability(page, "transcription")
    assert page.locator("#pg-prompt").is_hidden()
    page.locator("#pg-file-0-url").fill(spoken)
    page.locator("#pg-language").fill("en")
    _submit(page)
    _wait_status(page, "completed")
    assert _sent_body(page) == {"model": "whisper", "audio_url": spoken, "language": "en"}
    page.wait_for_function("() => !document.querySelector('#pg-text-output').textContent.includes('Loading')")
    assert page.locator("#pg-text-output").inner_text().strip()
    page_log.assert_clean()


def test_files_upload_by_picker_and_by_drop_into_the_request(api_url: str, api: httpx.Client, key: str, page: Any,
                                                             page_log: PageLog, sim: httpx.Client, tmp_path: Path):
    # Two real images to upload: outputs of image jobs.
    images = []
    for name in ("first", "last"):
        job = wait_for(api, api.post("/image", json={"model": "flux-schnell", "prompt": f"{name} {_marker()}"}
                                     ).json()["job_id"])
        images.append(httpx.get(job["output"]["url"]).content)
    picked = tmp_path / "first.png"
    picked.write_bytes(images[0])

    _open(page, api_url, key)
    _capability(page, "video")
    page.select_option("#pg-model", "kling-v3")
    page.select_option("#pg-mode", "keyframes")
    assert page.locator(".pg-drop").count() == 2
    page.set_input_files("#pg-file-0-file", str(picked))
    dropped = page.evaluate_handle("""(bytes) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], "last.png", {type: "image/png"}));
        return transfer; }""", list(images[1]))
    page.dispatch_event("#pg-file-1-drop", "dragover", {"dataTransfer": dropped})
    page.dispatch_event("#pg-file-1-drop", "drop", {"dataTransfer": dropped})
    for i in (0, 1):
        page.wait_for_function(f"() => document.querySelector('#pg-file-{i}-url').value.includes('/u/')")
    urls, file_ids = [], []
    for i, content in enumerate(images):
        file_id = page.locator(f"#pg-file-{i}-drop").get_attribute("data-file-id")
        stored = api.get(f"/files/{file_id}").json()  # it landed in /v1/files, with these bytes
        assert stored["size"] == len(content) and stored["media_type"] == "image/png"
        assert page.locator(f"#pg-file-{i}-url").input_value() == stored["url"]
        urls.append(stored["url"])
        file_ids.append(file_id)
    assert len(set(file_ids)) == 2

    marker = _marker()
    page.locator("#pg-prompt").fill(f"day to night {marker}")
    job_id = _submit(page)
    assert _sent_body(page)["files"] == [{"url": urls[0]}, {"url": urls[1]}]
    _wait_status(page, "completed")
    assert api.get(f"/jobs/{job_id}").json()["status"] == "completed"
    # The provider got both frames: the keyframes endpoint's first and last image.
    (sent,) = sim_requests(sim, marker)
    assert sent["input"].get("start_image_url") and sent["input"].get("end_image_url")
    page_log.assert_clean()


def test_the_curl_and_python_snippets_send_the_same_request(api_url: str, api: httpx.Client, key: str, page: Any,
                                                            page_log: PageLog, tmp_path: Path):
    _open(page, api_url, key)
    prompt = f"{AWKWARD} {_marker()}"
    page.select_option("#pg-model", "flux-schnell")
    page.locator("#pg-prompt").fill(prompt)
    page.select_option("#pg-aspect-ratio", "4:3")
    _options(page, {"sim": {"latency": 0.2}, "note": "o'clock"})
    job_id = _submit(page)
    _wait_status(page, "completed")
    original = api.get(f"/jobs/{job_id}").json()
    curl = page.locator("#pg-curl").inner_text()
    python = page.locator("#pg-python").inner_text()
    assert f"{api_url}/v1/image" in curl and "$GENGATE_API_KEY" in curl and key not in curl

    env = {**os.environ, "GENGATE_API_KEY": key}
    if shutil.which("curl"):
        run = subprocess.run(["bash", "-c", curl], env=env, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        replayed = json.loads(run.stdout)
    else:  # no curl: the request it describes, replayed with httpx
        url = re.search(r"-X POST '([^']+)'", curl).group(1)
        replayed = httpx.post(url, json=_sent_body(page), headers={"Authorization": f"Bearer {key}"}).json()
    again = wait_for(api, replayed["job_id"])
    # The same request: the same model, and the same cache key (a hash over every parameter).
    assert again["status"] == "completed" and again["model"] == original["model"]
    assert again["cache"]["key"] == original["cache"]["key"] and again["cache"]["hit"] is True

    # The Python snippet, run as it is shown, with the project's own client.
    run = subprocess.run([sys.executable, "-c", python], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    saved = Path(tmp_path, run.stdout.strip())
    assert saved.exists() and saved.stat().st_size > 0
    by_python = api.get(f"/jobs/{saved.stem}").json()
    assert by_python["cache"]["key"] == original["cache"]["key"]
    page_log.assert_clean()


def test_markup_in_a_prompt_and_an_error_is_text(api_url: str, api: httpx.Client, key: str, page: Any,
                                                 page_log: PageLog):
    _open(page, api_url, key)
    page.select_option("#pg-model", "flux-schnell")
    page.locator("#pg-prompt").fill(XSS)
    _options(page, {"sim": {"fail": f"refused: {XSS}"}})
    assert json.dumps(XSS) in page.locator("#pg-curl").inner_text()  # shown in the body, as it is sent
    job_id = _submit(page)
    _wait_status(page, "failed")
    assert XSS in page.locator("#pg-job-error").inner_text()
    assert page.locator("#pg-sent").inner_text() == XSS
    assert api.get(f"/jobs/{job_id}").json()["status"] == "failed"
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("window.__x") is None
    page_log.assert_clean()


def test_trim_and_probe_a_video_from_its_job_page(api_url: str, api: httpx.Client, key: str, page: Any,
                                                  page_log: PageLog):
    made = api.post("/video", json={"model": "kling-v3", "prompt": f"a train {_marker()}", "duration": 3})
    video = wait_for(api, made.json()["job_id"])
    assert video["status"] == "completed"
    _open(page, api_url, key)
    page.goto(f"{api_url}/ui#/jobs/{video['job_id']}")
    page.locator("#process-op").wait_for()
    assert page.locator("#process-op option").all_inner_texts() == ["Trim", "Resize", "Slice", "Probe"]

    page.select_option("#process-op", "probe")
    page.locator("#process-submit").click()
    probe = json.loads(page.locator("#probe-output").inner_text())
    assert probe == api.post("/ffmpeg/probe", json={"url": video["output"]["url"]}).json()
    assert probe["duration"] > 0 and probe["width"] > 0

    page.select_option("#process-op", "trim")
    page.locator("#process-end").fill("1")
    page.locator("#process-submit").click()
    page.locator("#process-job").wait_for()
    page.wait_for_selector('#process-status .badge[data-status="completed"]', timeout=30_000)
    trimmed_id = page.locator("#process-job").inner_text()
    trimmed = api.get(f"/jobs/{trimmed_id}").json()
    assert trimmed["status"] == "completed" and trimmed["model"].endswith(":trim")
    page.locator("#process-job").click()  # to the new job's page
    page.wait_for_url(f"**/ui#/jobs/{trimmed_id}")
    page.locator('#job-status .badge[data-status="completed"]').wait_for()
    seconds = api.post("/ffmpeg/probe", json={"url": trimmed["output"]["url"]}).json()["duration"]
    assert seconds < probe["duration"]
    page_log.assert_clean()


def test_keyboard_and_phone_width(api_url: str, api: httpx.Client, key: str, page: Any, page_log: PageLog):
    page.set_viewport_size({"width": 375, "height": 700})
    _open(page, api_url, key)
    for capability in ("image", "video", "speech", "music", "transcription"):
        _capability(page, capability)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, capability
    # Capabilities are radio buttons: arrow keys move between them.
    page.locator("#pg-cap-music").focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.querySelector('#pg-form').getAttribute('aria-label') === 'speech request'")
    _capability(page, "music")
    page.locator("#pg-prompt").focus()
    page.keyboard.type(f"calm piano {_marker()}")
    page.keyboard.press("Tab")  # to the duration
    page.keyboard.type("5")
    page.locator("#pg-submit").focus()
    page.keyboard.press("Enter")
    page.locator("#pg-job-link").wait_for()  # the first job of this page
    _wait_status(page, "completed")
    page.locator("#pg-outcome audio").wait_for()
    assert _sent_body(page)["duration"] == 5
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page_log.assert_clean()
