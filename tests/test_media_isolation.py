"""What an FFmpeg child can reach: the real runner (`media.run`) running a hostile stand-in for
ffmpeg, the system's Python with a script that tries what a compromised FFmpeg would try. It must
not read the worker's environment (its own or through /proc), open a socket, read files outside
its job, run as the worker's user where the worker may switch users, grow the job's directory past
its byte cap, or create more files than allowed, and each refusal must be a clear failure.

Unit level: media.run and media.isolation only; no Redis, no API, nothing mocked.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gengate.media import isolation
from gengate.media.run import Limits, MediaFailed, MediaNoSpace, job_dir, run_ffmpeg, usage

# The system's Python (in /usr, which the child may read), never the virtualenv's copy.
PYTHON = shutil.which("python3", path="/usr/bin:/bin")
pytestmark = pytest.mark.skipif(PYTHON is None, reason="no system python3 in /usr/bin to play FFmpeg's part")

LIMITS = Limits(seconds=20, cpu_seconds=20, max_output_bytes=200 * 1024**2, max_memory_bytes=2 * 1024**3,
                max_files=8, max_job_bytes=20 * 1024**2, user="nobody")
SWITCHES_USERS = isolation.media_ids("nobody") is not None
SECRET = "gengate-test-secret-0123456789"

ATTEMPTS = r'''
import json, os, socket, sys

def attempt(fn):
    try:
        fn()
        return "allowed"
    except OSError as exc:
        return f"refused: {exc.strerror}"

def read(path):
    with open(path, "rb") as f:
        f.read()

def connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(("127.0.0.1", int(sys.argv[1])))
    s.close()

def unix_socket():
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()

seen = {
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "environ": dict(os.environ),
    "parent_environ": attempt(lambda: read(f"/proc/{os.getppid()}/environ")),
    "init_environ": attempt(lambda: read("/proc/1/environ")),
    "tcp": attempt(connect),
    "unix_socket": attempt(unix_socket),
    "outside_file": attempt(lambda: read(sys.argv[2])),
    "write_outside": attempt(lambda: open(sys.argv[3], "wb").close()),
}
with open("seen.json", "w") as f:
    json.dump(seen, f)
'''


@pytest.fixture
def job():
    """A job directory where the worker makes them (the system's temporary directory): pytest's own
    tmp_path is private to root, and the child may run as another user."""
    with job_dir() as d:
        yield d


@pytest.fixture
def listener():
    """A TCP port on loopback that accepts connections: what the child must not reach."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def _script(job: Path, name: str, text: str) -> str:
    (job / name).write_text(text)
    return name


def _attempts(job: Path, tmp_path: Path, port: int, limits: Limits) -> dict:
    outside = tmp_path / "outside.txt"
    outside.write_text("the worker's own file")
    script = _script(job, "attempts.py", ATTEMPTS)
    run_ffmpeg(["-I", "-S", script, str(port), str(outside), str(tmp_path / "planted.txt")], workdir=job,
               limits=limits, program=PYTHON)
    return json.loads((job / "seen.json").read_text())


def test_the_child_reaches_nothing_of_the_worker(job: Path, tmp_path: Path, listener: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENGATE_SECRET_KEY", SECRET)  # in the worker's (this process's) environment
    seen = _attempts(job, tmp_path, listener, LIMITS)
    assert set(seen["environ"]) <= {"PATH", "LC_ALL"}, seen["environ"]
    assert SECRET not in json.dumps(seen)
    for what in ("parent_environ", "init_environ", "tcp", "unix_socket", "outside_file", "write_outside"):
        assert seen[what].startswith("refused"), (what, seen[what])
    assert not (tmp_path / "planted.txt").exists()
    if SWITCHES_USERS:
        nobody = pwd.getpwnam("nobody")
        assert (seen["uid"], seen["gid"], seen["groups"]) == (nobody.pw_uid, nobody.pw_gid, [])


def test_without_another_user_the_other_layers_still_hold(job: Path, tmp_path: Path, listener: int) -> None:
    """GENGATE_MEDIA_USER empty (as in the Docker image, which cannot switch users): the child runs
    as the worker, and still reads no environ of the worker and opens no socket."""
    seen = _attempts(job, tmp_path, listener, Limits(**{**LIMITS.__dict__, "user": ""}))
    assert seen["uid"] == os.getuid()
    for what in ("parent_environ", "init_environ", "tcp", "unix_socket"):
        assert seen[what].startswith("refused"), (what, seen[what])


def test_the_worker_is_not_dumpable_after_a_run(job: Path, tmp_path: Path, listener: int) -> None:
    _attempts(job, tmp_path, listener, LIMITS)
    pr_get_dumpable = 3
    assert ctypes.CDLL(None).prctl(pr_get_dumpable, 0, 0, 0, 0) == 0
    # /proc/<pid>/environ of a non-dumpable process belongs to root, whatever user runs it.
    assert os.stat(f"/proc/{os.getpid()}/environ").st_uid == 0


def test_writing_past_the_job_byte_cap_is_stopped(job: Path) -> None:
    """One file grown without end: RLIMIT_FSIZE holds it to what was left of the job's cap."""
    script = _script(job, "fill.py", "f = open('big.raw', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n")
    with pytest.raises(MediaFailed, match="limit"):
        run_ffmpeg(["-I", "-S", script], workdir=job, limits=LIMITS, program=PYTHON)
    assert usage(job).bytes <= LIMITS.max_job_bytes


def test_many_files_together_past_the_job_byte_cap_are_stopped_while_running(job: Path) -> None:
    """Several files, each under the per-file limit, together past the cap: the watch kills the
    child while it runs, with a message naming the job's disk limit."""
    script = _script(job, "fill_many.py", (
        "import time\n"
        "files = [open(f'part{i}.raw', 'wb') for i in range(6)]\n"
        "while True:\n"
        "    for f in files:\n"
        "        f.write(b'x' * (1 << 18))\n"
        "        f.flush()\n"
        "    time.sleep(0.005)\n"))
    started = time.monotonic()
    with pytest.raises(MediaFailed, match=r"disk limit \(20971520 bytes"):
        run_ffmpeg(["-I", "-S", script], workdir=job, limits=LIMITS, program=PYTHON)
    assert time.monotonic() - started < 10
    # what got past the cap is what six files take in one look's interval, far below their own limit
    assert usage(job).bytes <= LIMITS.max_job_bytes + 6 * (1 << 20) * 4


def test_inputs_count_toward_the_job_byte_cap(job: Path) -> None:
    (job / "in_1.raw").write_bytes(b"\0" * (LIMITS.max_job_bytes - 1024))
    script = _script(job, "small.py", "open('out.raw', 'wb').write(b'y' * 1_000_000)\n")
    with pytest.raises(MediaFailed, match="limit"):
        run_ffmpeg(["-I", "-S", script], workdir=job, limits=LIMITS, program=PYTHON)


def test_creating_files_without_end_is_stopped_while_running(job: Path) -> None:
    script = _script(job, "spawn.py", "i = 0\nwhile True:\n    open(f'f{i}', 'w').close()\n    i += 1\n")
    with pytest.raises(MediaFailed, match=r"created \d+ files; at most 8 are allowed"):
        run_ffmpeg(["-I", "-S", script], workdir=job, limits=LIMITS, program=PYTHON)
    assert usage(job).entries < 100_000


def test_creating_a_few_files_too_many_fails_after_the_run(job: Path) -> None:
    script = _script(job, "twelve.py", "for i in range(12):\n    open(f'f{i}', 'w').close()\n")
    with pytest.raises(MediaFailed, match="files"):
        run_ffmpeg(["-I", "-S", script], workdir=job, limits=LIMITS, program=PYTHON)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_run_does_not_start_without_free_space_for_its_cap() -> None:
    small = Path(tempfile.mkdtemp(prefix="gengate-test-small-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with job_dir(small) as job:
            marker = job / "ran"
            script = _script(job, "ran.py", f"open({str(marker)!r}, 'w').close()\n")
            with pytest.raises(MediaNoSpace, match="too little free disk space"):
                run_ffmpeg(["-I", "-S", script], workdir=job, limits=LIMITS, program=PYTHON)
            assert not marker.exists()
            run_ffmpeg(["-I", "-S", script], workdir=job, program=PYTHON,
                       limits=Limits(**{**LIMITS.__dict__, "max_job_bytes": 1 << 20}))
            assert marker.exists()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
        small.rmdir()


def test_an_unknown_media_user_fails_closed(job: Path) -> None:
    if not SWITCHES_USERS:
        pytest.skip("this worker cannot switch users")
    script = _script(job, "noop.py", "pass\n")
    with pytest.raises(MediaFailed, match="does not exist"):
        run_ffmpeg(["-I", "-S", script], workdir=job, program=PYTHON,
                   limits=Limits(**{**LIMITS.__dict__, "user": "no-such-user-gengate"}))


def test_the_seccomp_filter_matches_this_machine() -> None:
    program = isolation.seccomp_program()
    if os.uname().machine in ("x86_64", "aarch64"):
        assert program is not None and len(program) % 8 == 0
    else:
        assert program is None


def test_a_work_dir_the_child_cannot_enter_is_a_clear_error(tmp_path: Path) -> None:
    if not SWITCHES_USERS:
        pytest.skip("this worker cannot switch users")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with job_dir(private) as job:
        script = _script(job, "noop.py", "pass\n")
        with pytest.raises(MediaFailed, match="may not enter"):
            run_ffmpeg(["-I", "-S", script], workdir=job, limits=LIMITS, program=PYTHON)
