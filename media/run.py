"""Run ffmpeg/ffprobe as a contained child: no shell, a private working directory, an empty
environment, kernel limits on CPU time, file size, memory and open files, a wall-clock limit,
cancellation, caps on the bytes and files of the job's directory watched while the child runs, and
the isolation layers of `media.isolation` (another user, Landlock, seccomp, a non-dumpable worker).

The child gets its own process group so that a timeout, a cancel or a cap kills everything it
started. Its stderr is read as it comes and only the tail is kept: a chatty or hostile command
cannot fill our memory. Stdlib only.

The disk cap is the job's whole working directory (inputs, outputs, anything else the child
writes), measured every WATCH_SECONDS while the child runs; past the cap the process group is
killed. Between two looks the child can write at most what the disk takes in WATCH_SECONDS, and
RLIMIT_FSIZE holds every single file to what was left of the cap when the run started, so the
overshoot stays bounded even for a child that writes many files at once. A size-capped tmpfs would
be exact but needs mount privileges, which the Docker image does not have; this works everywhere.
"""

from __future__ import annotations

import json
import logging
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
from dataclasses import dataclass, field
from pathlib import Path

from gengate.config.settings import get_settings
from gengate.media import isolation
from gengate.media.sandbox import INPUT_GUARD

STDERR_TAIL_BYTES = 16 * 1024
MAX_PROBE_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_OPEN_FILES = 256
POLL_SECONDS = 0.2  # how often cancelled() is asked (it may ask Redis)
WATCH_SECONDS = 0.05  # how often the job directory's bytes and files are measured while the child runs
log = logging.getLogger("gengate.media")
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


class MediaNoSpace(MediaFailed):
    """The worker's disk has less free space than the job may use: the run did not start."""


@dataclass(frozen=True)
class Limits:
    seconds: float  # wall clock
    cpu_seconds: int  # all threads together
    max_output_bytes: int  # largest single file the child may write
    max_memory_bytes: int  # address space
    max_files: int  # files one run may create in its working directory
    # bytes the job's whole working directory may hold while the child runs (inputs included)
    max_job_bytes: int = field(default_factory=lambda: get_settings().media_max_job_bytes)
    # the user the child runs as when the worker may switch users ("" never switches)
    user: str = field(default_factory=lambda: get_settings().media_user)


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

    MediaTimeout / MediaCancelled when it was killed, MediaNoSpace when the disk has less free space
    than the job may still use, MediaFailed on any other failure (non-zero exit, a kernel limit, the
    job's byte cap reached, too many files created)."""
    exe = tool(program)
    before = usage(workdir)
    check_free_space(workdir, limits.max_job_bytes - before.bytes)
    _, err = _run([exe, *args], workdir=workdir, limits=limits, cancelled=cancelled, name=program, before=before)
    return _clean(err, workdir)


def check_free_space(workdir: Path, needed: int) -> None:
    """MediaNoSpace unless the file system of `workdir` has `needed` bytes free for us: a job starts
    only when it can use all it is allowed to without filling the worker's disk."""
    st = os.statvfs(workdir)
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise MediaNoSpace(f"this worker has too little free disk space for a media job ({free // (1 << 20)} MiB "
                           f"free, a job may use {needed // (1 << 20)} MiB); try again later")


@dataclass(frozen=True)
class Usage:
    bytes: int  # on disk: the larger of each file's size and its allocated blocks
    entries: int  # files, directories and links
    largest: int  # the largest single file, by size


def usage(root: Path) -> Usage:
    """What a job's directory holds, without following links."""
    total, entries, largest = 0, 0, 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += max(st.st_size, st.st_blocks * 512)
                        largest = max(largest, st.st_size)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return Usage(total, entries, largest)


def probe(path: Path, *, limits: Limits, workdir: Path | None = None) -> dict:
    """ffprobe's JSON description (format and streams) of one local file, read through the same
    protocol and demuxer whitelists as user inputs, under the same isolation as FFmpeg.

    `workdir` is the job directory holding the file; without one, ffprobe runs in a fresh one and
    may read only that file (a copy of it, when ffprobe runs as another user who may not read it)."""
    path = Path(path).absolute()
    if workdir is not None:
        return _probe(path, workdir, limits, [])
    with job_dir() as fresh:
        if _child_ids(limits) is not None:
            return _probe(isolation.take_in(path, fresh), fresh, limits, [])
        return _probe(path, fresh, limits, [path])


def _probe(path: Path, workdir: Path, limits: Limits, readable: list[Path]) -> dict:
    args = ["-v", "error", *INPUT_GUARD, "-print_format", "json", "-show_format", "-show_streams", str(path)]
    out, _ = _run([tool("ffprobe"), *args], workdir=workdir, limits=limits, cancelled=None, name="ffprobe",
                  capture_stdout=True, readable=readable, hide=[path.parent])
    try:
        return json.loads(out.decode("utf-8", "replace"))
    except ValueError:
        raise MediaFailed(f"ffprobe did not describe {path.name}") from None


@contextmanager
def job_dir(root: Path | None = None) -> Iterator[Path]:
    """A fresh private directory (mode 0700) for one job under `root` (default GENGATE_MEDIA_WORK_DIR,
    else the system's temporary directory), removed afterwards whatever happens."""
    root = root if root is not None else get_settings().media_work_dir
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="gengate-media-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the child ---------------------------------------------------------------------------------------

def _run(argv: list[str], *, workdir: Path, limits: Limits, cancelled: Callable[[], bool] | None, name: str,
         capture_stdout: bool = False, before: Usage | None = None, readable: list[Path] | None = None,
         hide: list[Path] | None = None) -> tuple[bytes, bytes]:
    deadline = time.monotonic() + limits.seconds
    before = before if before is not None else usage(workdir)
    file_cap = max(1, min(limits.max_output_bytes, limits.max_job_bytes - before.bytes))
    jail = _confinement(workdir, limits, readable or [])
    ids = jail.ids
    try:
        proc = subprocess.Popen(
            argv, cwd=workdir, env=_child_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, close_fds=True, preexec_fn=_preexec(limits, file_cap, jail), umask=0o077,
            user=ids.uid if ids else None, group=ids.gid if ids else None, extra_groups=[] if ids else None,
        )
    except subprocess.SubprocessError as exc:  # the child could not confine itself: it never ran
        raise MediaFailed(f"{name} could not be started in its sandbox ({exc}); see the worker's log") from None
    finally:
        jail.close()
    pipes = _Pipes(proc.stderr, proc.stdout if capture_stdout else None)
    status, usage_, stopped = None, None, ""
    next_check = time.monotonic() + POLL_SECONDS
    try:
        while True:
            if pipes.open:
                pipes.read(WATCH_SECONDS)
            else:
                time.sleep(0.01)  # the child closed its pipes, so it is exiting: reap it promptly
            # WNOWAIT: the exited child stays a zombie, so its group id cannot be reused before we kill it.
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            now = time.monotonic()
            stopped = _over(usage(workdir), before, limits)  # the disk caps, at every look
            if not stopped and pipes.overflowed:
                stopped = "output"
            if not stopped and now >= deadline:
                stopped = "timeout"
            if not stopped and cancelled is not None and now >= next_check:
                next_check = now + POLL_SECONDS  # cancelled() may ask Redis: not more than 5 times a second
                stopped = "cancelled" if cancelled() else ""
            if stopped:
                break
        _kill_group(proc.pid)  # the child if stopped, and anything it started in every case
        _, status, usage_ = os.wait4(proc.pid, 0)
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

    # A child that wrote past a cap and exited between two looks failed all the same.
    after = usage(workdir)
    stopped = stopped or _over(after, before, limits)
    code = proc.returncode
    cpu = (usage_.ru_utime + usage_.ru_stime) if usage_ is not None else 0.0
    if stopped == "disk":
        raise MediaFailed(f"{name} was stopped: the job's files reached its disk limit "
                          f"({limits.max_job_bytes} bytes, inputs included)")
    if stopped == "files":
        raise MediaFailed(f"{name} created {after.entries - before.entries} files; at most {limits.max_files} "
                          "are allowed")
    if stopped == "timeout":
        raise MediaTimeout(f"{name} ran longer than its time limit ({limits.seconds:.0f} s) and was stopped")
    if stopped == "cancelled":
        raise MediaCancelled(f"{name} was stopped: the job was cancelled")
    if stopped == "output":
        raise MediaFailed(f"{name} printed more than {MAX_PROBE_OUTPUT_BYTES} bytes and was stopped")
    if code == 0:
        return bytes(pipes.out), bytes(pipes.err)
    said = _clean(bytes(pipes.err), workdir, hide=hide)
    # SIGXFSZ, or EFBIG for a child that ignores the signal and gives up on the write that failed.
    if code == -signal.SIGXFSZ or after.largest >= file_cap:
        raise MediaFailed(f"{name} stopped: an output file grew larger than the limit ({file_cap} bytes)")
    # SIGXCPU at the soft limit (ffmpeg catches it and exits with 255), SIGKILL at the hard one.
    if cpu >= limits.cpu_seconds - 0.05:
        raise MediaFailed(f"{name} stopped: it used up its CPU time limit ({limits.cpu_seconds} s)")
    if any(sign in said for sign in _OUT_OF_MEMORY):
        raise MediaFailed(f"{name} ran out of memory (limit {limits.max_memory_bytes // (1 << 20)} MiB): {said}")
    if code < 0:
        raise MediaFailed(f"{name} was killed by signal {-code}" + (f": {said}" if said else ""))
    raise MediaFailed(said or f"{name} failed (exit status {code})")


def _over(now: Usage, before: Usage, limits: Limits) -> str:
    """Which cap of the job's directory the child has gone past ("disk", "files"), if any."""
    if now.bytes > limits.max_job_bytes:
        return "disk"
    if now.entries - before.entries > limits.max_files:
        return "files"
    return ""


def _child_ids(limits: Limits) -> isolation.Ids | None:
    try:
        return isolation.media_ids(limits.user)
    except isolation.IsolationError as exc:
        raise MediaFailed(str(exc)) from None


def _confinement(workdir: Path, limits: Limits, readable: list[Path]) -> isolation.Confinement:
    """Every isolation layer for one run, the job directory handed to the child's user."""
    _protect_worker()
    try:
        jail = isolation.confine(workdir, limits.user, readable)
        isolation.hand_over(workdir, jail.ids)
    except isolation.IsolationError as exc:
        raise MediaFailed(str(exc)) from None
    if not _logged_layers:
        _logged_layers.append(True)
        log.info("FFmpeg runs isolated by: %s", ", ".join(jail.layers))
    return jail


_logged_layers: list[bool] = []
_protected: list[bool] = []


def _protect_worker() -> None:
    if not _protected:
        if not isolation.protect_worker():
            log.warning("could not make this process non-dumpable; FFmpeg may read its environment")
        _protected.append(True)


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


def _preexec(limits: Limits, file_cap: int, jail: isolation.Confinement) -> Callable[[], None]:
    """The preexec function: the child's kernel limits, then its confinement. Everything is computed
    here, in the parent; the child (between fork and exec, already switched to its user) only makes
    setrlimit, prctl and Landlock calls."""
    set_limits = _limiter(limits, file_cap)

    def apply() -> None:
        set_limits()
        jail.apply()
    return apply


def _limiter(limits: Limits, file_cap: int) -> Callable[[], None]:
    """Setting the child's kernel limits; `file_cap` is the largest file it may write."""
    cpu = max(1, int(limits.cpu_seconds))
    wanted = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL a second later
        (resource.RLIMIT_FSIZE, file_cap, file_cap),  # SIGXFSZ past it
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


_NOT_ON_WHITELIST = re.compile(r"\[(\w+) @ 0x[0-9a-f]+\] Format not on whitelist '[^']*'")
_CONTEXT_ADDRESS = re.compile(r"\[([\w:.-]+) @ 0x[0-9a-f]+\]")
_BANNER = re.compile(r"\s*(ff\w+ version |built with |configuration: |lib\w+\s+\d+\.\s*\d+\.)")


def _clean(raw: bytes, workdir: Path, lines: int = 8, hide: list[Path] | None = None) -> str:
    """The last lines of what the tool said, without our private paths."""
    text = raw.decode("utf-8", "replace")
    text = _NOT_ON_WHITELIST.sub(r"input format '\1' is not accepted (only ordinary media files are)", text)
    text = _CONTEXT_ADDRESS.sub(r"[\1]", text)
    dirs = [workdir, *(hide or [])]
    for prefix in sorted({str(d) for d in dirs} | {os.path.realpath(d) for d in dirs}, key=len, reverse=True):
        text = text.replace(prefix + os.sep, "").replace(prefix, ".")
    kept = [line.strip() for line in text.splitlines() if line.strip() and not _BANNER.match(line)][-lines:]
    return "\n".join(kept)[-2000:]
