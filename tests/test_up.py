"""`gengate up` as a newcomer runs it: the printed exports and curl line work, Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gengate import procs


def _processes_with(marker: str) -> list[int]:
    """PIDs whose environment or command line mentions `marker` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in blob:
            found.append(int(entry.name))
    return found


# Folders named like gengate's subpackages, each a package that refuses to be imported: a process
# that imported `config` (or `storage`, ...) from its working directory instead of `gengate.config`
# fails at once, instead of working by luck in the repository's root.
DECOYS = ("config", "storage", "api", "jobs", "media", "tasks", "workers", "adapters", "sim")


def plant_decoys(directory: Path) -> None:
    for name in DECOYS:
        (directory / name).mkdir(exist_ok=True)
        (directory / name / "__init__.py").write_text(
            f"raise ImportError('the folder {name}/ of the working directory was imported instead of gengate.{name}')\n")


GENGATE = str(Path(sys.executable).with_name("gengate"))  # the console script, as a user runs it


def test_up_serves_the_printed_curl_and_stops_cleanly(tmp_path: Path):
    """Run from a directory that holds folders named like gengate's packages, with the data dir
    there too (GENGATE_DATA_DIR=.): every process `up` starts must run gengate's own modules."""
    plant_decoys(tmp_path)
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGATE_")}
    env.update(GENGATE_API_PORT=str(port), GENGATE_DATA_DIR=".", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([GENGATE, "up"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        out = "".join(lines)
        key = re.search(r"^export GENGATE_API_KEY=(gg_live_\S+)$", out, re.M).group(1)
        base = re.search(r"^export GENGATE_BASE_URL=(\S+)$", out, re.M).group(1)
        assert base == f"http://127.0.0.1:{port}/v1"
        dashboard = re.search(r"^dashboard\s+(\S+)", out, re.M).group(1)
        assert dashboard == f"http://127.0.0.1:{port}/ui"
        assert httpx.get(dashboard).headers["content-security-policy"].startswith("default-src 'self'")
        curl = next(line for line in lines if line.startswith("curl "))
        body = re.search(r"-d '(.*)'", curl).group(1)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        created = httpx.post(f"{base}/image", content=body, headers=headers)
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        for _ in range(200):
            job = httpx.get(f"{base}/jobs/{job_id}", headers=headers).json()
            if job["status"] == "completed":
                break
            time.sleep(0.05)
        assert job["status"] == "completed", job
        png = httpx.get(job["output"]["url"]).content
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        # Another CLI command with the same data dir finds the private Redis that `up` started.
        cli = subprocess.run([GENGATE, "keys", "create"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stderr
        assert httpx.get(f"{base}/jobs/{job_id}",
                         headers={"Authorization": f"Bearer {cli.stdout.split()[-1]}"}).status_code == 404
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        proc.wait(30)
    assert proc.returncode == 0, "".join(lines)
    time.sleep(0.5)
    assert _processes_with(str(tmp_path)) == [], "gengate up left processes behind"
    assert not (tmp_path / "run" / "redis.url").exists()


def test_killed_up_leaves_no_orphans(tmp_path: Path):
    """Even a SIGKILL of `gengate up` (no cleanup code runs) takes its children down with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGATE_")}
    env.update(GENGATE_API_PORT=str(procs.free_port()), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([*procs.gengate_command(), "up"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Ctrl-C"):
            break
    assert _processes_with(str(tmp_path)), "gengate up started nothing"
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 20
    while _processes_with(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(str(tmp_path)) == [], "children outlived a killed gengate up"
