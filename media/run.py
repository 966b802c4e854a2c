"""Run ffmpeg/ffprobe as a contained child: no shell, a private working directory, a minimal
environment, kernel limits on CPU time, file size, memory and open files, a wall-clock limit,
cancellation, and a cap on how many files one run may create.

The child gets its own process group so that a timeout or a cancel kills everything it started.
Its stderr is read as it comes and only the tail is kept: a chatty or hostile command cannot fill
our memory. Stdlib only.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gengate.media.sandbox import INPUT_GUARD

STDERR_TAIL_BYTES = 16 * 1024
MAX_PROBE_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_OPEN_FILES = 256
POLL_SECONDS = 0.2
# A safe PATH for the child (it execs nothing itself; this is only for libraries that look things up).
CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"


# What ffmpeg and the loader say when the address-space limit bites.
_OUT_OF_MEMORY = ("Cannot allocate memory", "malloc of size", "failed to map segment", "bad_alloc")


class MediaToolMissing(RuntimeError):
    """ffmpeg or ffprobe is not installed on this worker."""


class MediaFailed(RuntimeError):
    """The tool failed; the message is the useful end of what it said, without our paths."""


class MediaTimeout(MediaFailed):
    """The tool ran past its wall-clock limit and was killed."""


class MediaCancelled(MediaFailed):
    """The job was cancelled while the tool ran; it was killed."""


@dataclass(frozen=True)
class Limits:
    seconds: float  # wall clock
    cpu_seconds: int  # all threads together
    max_output_bytes: int  # largest single file the child may write
    max_memory_bytes: int  # address space
    max_files: int  # files one run may create in its working directory


def tool(name: str) -> str:
    """The path of `name` (ffmpeg, ffprobe) on PATH; MediaToolMissing saying how to install it."""
    found = shutil.which(name)
    if not found:
        raise MediaToolMissing(f"{name} is not installed on this worker (not found on PATH); install FFmpeg, "
                               "e.g. `apt-get install -y ffmpeg`, and restart the worker")
    return found


def run_ffmpeg(args: list[str], *, workdir: Path, limits: Limits, cancelled: Callable[[], bool] | None = None,
               program: str = "ffmpeg") -> str:
    """Run `program args...` in `workdir` under `limits`; the tail of its stderr on success.

    MediaTimeout / MediaCancelled when it was killed, MediaFailed on any other failure (non-zero
    exit, a kernel limit, too many files created)."""
    exe = tool(program)
    before = _files(workdir)
    _, err = _run([exe, *args], workdir=workdir, limits=limits, cancelled=cancelled, name=program)
    created = len(_files(workdir) - before)
    if created > limits.max_files:
        raise MediaFailed(f"{program} created {created} files; at most {limits.max_files} are allowed")
    return _clean(err, workdir)


def probe(path: Path, *, limits: Limits) -> dict:
    """ffprobe's JSON description (format and streams) of one local file, read through the same
    protocol and demuxer whitelists as user inputs."""
    path = Path(path).absolute()
    args = ["-v", "error", *INPUT_GUARD, "-print_format", "json", "-show_format", "-show_streams", str(path)]
    out, _ = _run([tool("ffprobe"), *args], workdir=path.parent, limits=limits, cancelled=None, name="ffprobe",
                  capture_stdout=True)
    try:
        return json.loads(out.decode("utf-8", "replace"))
    except ValueError:
        raise MediaFailed(f"ffprobe did not describe {path.name}") from None


@contextmanager
def job_dir(root: Path | None = None) -> Iterator[Path]:
    """A fresh private directory (mode 0700) for one job, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix="gengate-media-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the child ---------------------------------------------------------------------------------------

def _run(argv: list[str], *, workdir: Path, limits: Limits, cancelled: Callable[[], bool] | None, name: str,
         capture_stdout: bool = False) -> tuple[bytes, bytes]:
    deadline = time.monotonic() + limits.seconds
    proc = subprocess.Popen(
        argv, cwd=workdir, env=_child_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True, close_fds=True, preexec_fn=_limiter(limits),
    )
    pipes = _Pipes(proc.stderr, proc.stdout if capture_stdout else None)
    status, usage, stopped = None, None, ""
    next_check = time.monotonic() + POLL_SECONDS
    try:
        while True:
            if pipes.open:
                pipes.read(POLL_SECONDS)
            else:
                time.sleep(0.01)  # the child closed its pipes, so it is exiting: reap it promptly
            # WNOWAIT: the exited child stays a zombie, so its group id cannot be reused before we kill it.
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            now = time.monotonic()
            if pipes.overflowed:
                stopped = "output"
            elif now >= deadline:
                stopped = "timeout"
            elif cancelled is not None and now >= next_check:
                next_check = now + POLL_SECONDS  # cancelled() may ask Redis: not more than 5 times a second
                stopped = "cancelled" if cancelled() else ""
            if stopped:
                break
        _kill_group(proc.pid)  # the child if stopped, and anything it started in every case
        _, status, usage = os.wait4(proc.pid, 0)
        pipes.read(1.0, until_eof=True)
    finally:
        if status is None:  # we are being interrupted ourselves: never leave the child running
            _kill_group(proc.pid)
            try:
                os.wait4(proc.pid, 0)
            except ChildProcessError:
                pass
        proc.returncode = -signal.SIGKILL if status is None else os.waitstatus_to_exitcode(status)
        pipes.close()

    code = proc.returncode
    cpu = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
    if stopped == "timeout":
        raise MediaTimeout(f"{name} ran longer than its time limit ({limits.seconds:.0f} s) and was stopped")
    if stopped == "cancelled":
        raise MediaCancelled(f"{name} was stopped: the job was cancelled")
    if stopped == "output":
        raise MediaFailed(f"{name} printed more than {MAX_PROBE_OUTPUT_BYTES} bytes and was stopped")
    if code == 0:
        return bytes(pipes.out), bytes(pipes.err)
    said = _clean(bytes(pipes.err), workdir)
    if code == -signal.SIGXFSZ:
        raise MediaFailed(f"{name} stopped: an output file grew larger than the limit "
                          f"({limits.max_output_bytes} bytes)")
    # SIGXCPU at the soft limit (ffmpeg catches it and exits with 255), SIGKILL at the hard one.
    if cpu >= limits.cpu_seconds - 0.05:
        raise MediaFailed(f"{name} stopped: it used up its CPU time limit ({limits.cpu_seconds} s)")
    if any(sign in said for sign in _OUT_OF_MEMORY):
        raise MediaFailed(f"{name} ran out of memory (limit {limits.max_memory_bytes // (1 << 20)} MiB): {said}")
    if code < 0:
        raise MediaFailed(f"{name} was killed by signal {-code}" + (f": {said}" if said else ""))
    raise MediaFailed(said or f"{name} failed (exit status {code})")


class _Pipes:
    """The child's stderr (only its tail is kept) and, for ffprobe, its stdout (capped)."""

    def __init__(self, err_stream, out_stream) -> None:  # type: ignore[no-untyped-def]
        self.err, self.out = bytearray(), bytearray()
        self.overflowed = False
        self._streams = [s for s in (err_stream, out_stream) if s is not None]
        self._bufs = {err_stream.fileno(): self.err}
        if out_stream is not None:
            self._bufs[out_stream.fileno()] = self.out
        self._err_fd = err_stream.fileno()

    def read(self, timeout: float, *, until_eof: bool = False) -> None:
        """Read for up to `timeout` seconds (a chatty child cannot keep us here longer);
        with until_eof, stop early only when every pipe has closed."""
        end = time.monotonic() + timeout
        while self._bufs:
            left = end - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(list(self._bufs), [], [], left)
            if not ready:
                return
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    del self._bufs[fd]
                    continue
                buf = self._bufs[fd]
                buf += chunk
                if fd == self._err_fd:
                    del buf[:-STDERR_TAIL_BYTES]
                elif len(buf) > MAX_PROBE_OUTPUT_BYTES:
                    self.overflowed = True
                    del buf[MAX_PROBE_OUTPUT_BYTES:]
                    return

    @property
    def open(self) -> bool:
        return bool(self._bufs)

    def close(self) -> None:
        for stream in self._streams:
            stream.close()


def _limiter(limits: Limits) -> Callable[[], None]:
    """The preexec function setting the child's kernel limits. Everything is computed here, in the
    parent; the child (between fork and exec) only makes setrlimit calls."""
    cpu = max(1, int(limits.cpu_seconds))
    wanted = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL a second later
        (resource.RLIMIT_FSIZE, limits.max_output_bytes, limits.max_output_bytes),  # SIGXFSZ past it
        (resource.RLIMIT_AS, limits.max_memory_bytes, limits.max_memory_bytes),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES, MAX_OPEN_FILES),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    caps = []
    for which, soft, hard in wanted:
        ceiling = resource.getrlimit(which)[1]  # the child inherits ours: it may not go above it
        if ceiling != resource.RLIM_INFINITY:
            hard = min(hard, ceiling)
            soft = min(soft, hard)
        caps.append((which, (soft, hard)))

    def apply() -> None:
        for which, pair in caps:
            resource.setrlimit(which, pair)
    return apply


def _child_env() -> dict[str, str]:
    # Nothing of ours (keys, FFREPORT, proxies, AV_LOG_* ...) reaches the child.
    return {"PATH": CHILD_PATH, "LC_ALL": "C"}


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _files(root: Path) -> set[str]:
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        found.update(os.path.join(dirpath, n) for n in filenames)
        found.update(os.path.join(dirpath, n) for n in dirnames)
    return found


_NOT_ON_WHITELIST = re.compile(r"\[(\w+) @ 0x[0-9a-f]+\] Format not on whitelist '[^']*'")
_CONTEXT_ADDRESS = re.compile(r"\[([\w:.-]+) @ 0x[0-9a-f]+\]")
_BANNER = re.compile(r"\s*(ff\w+ version |built with |configuration: |lib\w+\s+\d+\.\s*\d+\.)")


def _clean(raw: bytes, workdir: Path, lines: int = 8) -> str:
    """The last lines of what the tool said, without our private paths."""
    text = raw.decode("utf-8", "replace")
    text = _NOT_ON_WHITELIST.sub(r"input format '\1' is not accepted (only ordinary media files are)", text)
    text = _CONTEXT_ADDRESS.sub(r"[\1]", text)
    for prefix in {str(workdir), os.path.realpath(workdir)}:
        text = text.replace(prefix + os.sep, "").replace(prefix, ".")
    kept = [line.strip() for line in text.splitlines() if line.strip() and not _BANNER.match(line)][-lines:]
    return "\n".join(kept)[-2000:]
