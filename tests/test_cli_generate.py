"""`gengate generate ...` and `gengate jobs ...` end to end: the command as a subprocess (no terminal,
so plain progress lines) against the real API, worker and simulators; outputs checked as media files."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import av
import pytest
from PIL import Image

from gengate import procs
from gengate.sim import media
from tests.conftest import new_key


@pytest.fixture
def run(api_url, rds, worker, env, tmp_path):
    """Runs `gengate ARGS...` in tmp_path as a fresh account; returns the CompletedProcess."""
    cli_env = dict(env, GENGATE_API_KEY=new_key(rds), GENGATE_BASE_URL=f"{api_url}/v1")

    def gengate(*args: str, timeout: float = 60, **overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run([*procs.gengate_command(), *args], env={**cli_env, **overrides},
                              cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    return gengate


def _u() -> str:
    return uuid.uuid4().hex[:12]


def _streams(path: Path) -> tuple[list[str], float]:
    with av.open(str(path)) as container:
        kinds = [s.type for s in container.streams]
        return kinds, (container.duration or 0) / 1_000_000


def test_generate_image_writes_a_png(run, tmp_path):
    prompt = f"a red fox {_u()}"
    out = run("generate", "image", prompt, "--aspect-ratio", "16:9", "-o", "fox.png")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "fox.png"
    with Image.open(tmp_path / "fox.png") as img:
        assert img.format == "PNG" and img.width > img.height  # 16:9
    job_id = out.stderr.split()[0]
    assert job_id.startswith("job_") and f"{job_id} completed" in out.stderr and "saved fox.png" in out.stderr
    # The same request again: answered from the cache, still downloaded.
    again = run("generate", "image", "--prompt", prompt, "--aspect-ratio", "16:9", "-o", "again.png")
    assert again.returncode == 0 and "from the cache" in again.stderr
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "fox.png").read_bytes()


def test_generate_speech_writes_an_mp3_named_after_the_job(run, tmp_path):
    out = run("generate", "speech", "--text", f"Hello there {_u()}", "--voice", "sam")
    assert out.returncode == 0, out.stderr
    path = tmp_path / out.stdout.strip()
    assert path.name.startswith("job_") and path.suffix == ".mp3"
    kinds, seconds = _streams(path)
    assert kinds == ["audio"] and seconds > 0


def test_generate_video_from_a_local_file_uploads_it(run, tmp_path):
    (tmp_path / "still.png").write_bytes(media.png_bytes(64, 48, seed=int(_u()[:6], 16)))
    out = run("generate", "video", "-p", f"it comes alive {_u()}", "--file", "still.png", "--duration", "5",
              "-o", "clip.mp4")
    assert out.returncode == 0, out.stderr
    assert "uploaded still.png -> http" in out.stderr and "/u/file_" in out.stderr
    kinds, _ = _streams(tmp_path / "clip.mp4")
    assert "video" in kinds


def test_generate_music_without_waiting_then_jobs_wait(run, tmp_path):
    out = run("generate", "music", f"calm piano {_u()}", "--duration", "10", "--no-wait")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    assert job_id.startswith("job_") and not list(tmp_path.iterdir())
    (tmp_path / "music").mkdir()
    done = run("jobs", "wait", job_id, "-o", "music")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(f"music/{job_id}.")
    assert _streams(tmp_path / done.stdout.strip())[0] == ["audio"]


def test_generate_transcription_of_a_local_file(run, tmp_path):
    (tmp_path / "talk.wav").write_bytes(media.wav_bytes(1.0) + _u().encode())
    out = run("generate", "transcription", "talk.wav", "--language", "en", "-o", "talk.json")
    assert out.returncode == 0, out.stderr
    assert "text" in json.loads((tmp_path / "talk.json").read_text())


def test_a_failed_job_exits_1_with_its_error(run, tmp_path):
    out = run("generate", "image", f"forbidden {_u()}", "--provider-options",
              '{"sim": {"fail": "NSFW content detected"}}')
    assert out.returncode == 1
    assert " failed: " in out.stderr and "NSFW content detected" in out.stderr and out.stdout == ""
    assert not list(tmp_path.iterdir())


def test_refused_requests_exit_2_with_the_api_message(run):
    out = run("generate", "image", "x", "--model", "no-such-model")
    assert out.returncode == 2 and "(model)" in out.stderr and "400 ValidationError" in out.stderr
    out = run("generate", "speech", "hi", "--api-key", "gg_live_wrong")
    assert out.returncode == 2 and "401 AuthError" in out.stderr
    out = run("generate", "image", "x", GENGATE_API_KEY="")
    assert out.returncode == 2 and "GENGATE_API_KEY" in out.stderr
    out = run("generate", "image", "x", "--file", "missing.png")
    assert out.returncode == 2 and "neither an http(s) URL nor a file" in out.stderr
    out = run("generate", "image", "x", "--provider-options", "[1]")
    assert out.returncode == 2 and "JSON object" in out.stderr
    out = run("jobs", "show", "job_" + "0" * 32)
    assert out.returncode == 2 and "Job not found" in out.stderr
    out = run("generate", "image", "x", "--base-url", f"http://127.0.0.1:{procs.free_port()}/v1")
    assert out.returncode == 2 and "cannot reach the gateway" in out.stderr


def test_jobs_list_show_and_cancel(run):
    m = _u()
    slow = run("generate", "video", f"slow {m}", "--provider-options", '{"sim": {"latency": 10}}', "--no-wait")
    fast = run("generate", "image", f"fast {m}", "--no-wait")
    slow_id, fast_id = slow.stdout.strip(), fast.stdout.strip()

    listed = run("jobs", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["JOB", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == [fast_id, slow_id]  # newest first

    shown = run("jobs", "show", slow_id)
    assert shown.returncode == 0 and json.loads(shown.stdout)["job_id"] == slow_id

    cancelled = run("jobs", "cancel", slow_id)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{slow_id} cancelled"
    assert json.loads(run("jobs", "show", slow_id).stdout)["status"] == "cancelled"
    assert run("jobs", "wait", fast_id).returncode == 0
    again = run("jobs", "cancel", fast_id)
    assert again.returncode == 0 and "is completed: nothing to cancel" in again.stdout

    only = run("jobs", "list", "--status", "cancelled", "--json")
    assert [j["job_id"] for j in json.loads(only.stdout)["jobs"]] == [slow_id]
    paged = run("jobs", "list", "--limit", "1")
    assert len(paged.stdout.splitlines()) == 2 and "more: --cursor " in paged.stderr
    failed_wait = run("jobs", "wait", slow_id)
    assert failed_wait.returncode == 1 and f"{slow_id} cancelled" in failed_wait.stderr


def test_wait_timeout_exits_1_and_says_how_to_go_on(run):
    out = run("generate", "image", f"slow {_u()}", "--provider-options", '{"sim": {"latency": 5}}', "--timeout", "1")
    assert out.returncode == 1 and "did not finish within 1s" in out.stderr and "gengate jobs wait job_" in out.stderr
