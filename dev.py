#!/usr/bin/env python3
"""The two commands of the README, on a machine that has only Python 3.11+:

    python3 dev.py up     # a whole local gateway: private Redis, simulators, API, worker
    python3 dev.py test   # the whole test suite

Each first makes ./.venv and installs the project into it (again only when pyproject.toml
changed), makes sure FFmpeg is there for media jobs (installing Debian's package when run as root),
then runs `gengate up` or pytest from it. Extra arguments go to that command. `test` also makes sure
of a Chromium for the browser tests (tests/browser), the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".gengate-installed"


def ensure_env() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"gengate needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing gengate and its dependencies into .venv ...", flush=True)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    # The server extra (the gateway itself) and the test tools; an editable install, so a change to
    # the source needs no reinstall.
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "-e", f"{ROOT}[server,test]"], check=True)
    STAMP.write_text(wanted)


def apt_install(package: str) -> None:
    """`apt-get install` a Debian package when we can (root with apt-get), updating the package
    lists once if the first try fails (a fresh machine has none); otherwise do nothing."""
    if not (os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get")):
        return
    print(f"installing {package} (apt-get install -y {package}) ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-q", package], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", package], env=env)


def ensure_ffmpeg() -> None:
    """Media jobs run FFmpeg from the system (Debian's `ffmpeg` package). Install it when we can
    (root with apt-get); otherwise say how, and go on: a worker without it fails media jobs with
    that same advice, and the media tests skip."""
    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        return
    apt_install("ffmpeg")
    if not shutil.which("ffmpeg"):
        print("ffmpeg is not installed: media jobs (/v1/ffmpeg/...) will fail until it is "
              "(Debian/Ubuntu: sudo apt-get install -y ffmpeg; macOS: brew install ffmpeg)", flush=True)


def ensure_chromium() -> None:
    """The browser tests (tests/browser) drive the system's Chromium (Debian's `chromium` package)
    with Playwright, never a browser build of Playwright's own (`playwright install` downloads one,
    which a machine without the public internet cannot). Install it when we can; otherwise say how,
    and go on: those tests then skip, saying why."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")  # as tests/browser/conftest.py
    if os.environ.get("GENGATE_TEST_CHROMIUM") or any(map(shutil.which, names)):
        return
    apt_install("chromium")
    if not shutil.which("chromium"):
        print("chromium is not installed: the browser tests (tests/browser) will skip until it is "
              "(Debian/Ubuntu: sudo apt-get install -y chromium; or set GENGATE_TEST_CHROMIUM to a "
              "Chromium or Chrome binary)", flush=True)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("up", "test"):
        print(__doc__)
        return 2
    ensure_env()
    ensure_ffmpeg()
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "test":
        ensure_chromium()
    os.chdir(ROOT)
    if command == "up":
        cmd = [str(BIN / "gengate"), "up", *rest]
    else:
        cmd = [str(BIN / "python"), "-m", "pytest", *rest]
    if os.name == "posix":
        # Become the command: a SIGTERM (from `timeout`, a supervisor, CI) then reaches it, instead
        # of stopping this wrapper and leaving `gengate up` and its processes running.
        sys.stdout.flush()
        os.execv(cmd[0], cmd)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
