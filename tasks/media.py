"""Media jobs (trim, resize, slice, custom FFmpeg commands): the submit step of a job whose provider is
our own FFmpeg, on the `media` queue.

The same lifecycle as generation: the inputs are fetched (SSRF-safe; our own files are read in
place) into a private directory and hashed on the way, the cache decides (hit / share / lead), the
job goes queued -> processing, FFmpeg runs under `media.run`'s limits while a cancel is watched for,
and the outputs are stored content-addressed and the job completed with them. Nothing here holds a
job past the time limit: a runaway command is killed and the job fails with a clear error.

A job's disk use is bounded: it starts only when its directory's file system has the job's byte
cap free, its inputs are bounded in number and in bytes together, and everything in its directory
(inputs, outputs) counts toward the cap `media.run` watches while FFmpeg runs.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gengate.jobs import cache, states
from gengate.jobs.record import Job
from gengate.media import ops
from gengate.media.run import (Limits, MediaCancelled, MediaFailed, MediaNoSpace, MediaToolMissing, check_free_space,
                               job_dir, probe, run_ffmpeg)
from gengate.media.sandbox import UnsafeCommand, plan_command
from gengate.storage.fetch import FetchError, TooLarge, UnsafeURL, fetch_hash
from gengate.storage.base import StoredFile, extension_for, media_type_for
from gengate.storage.base import TooLarge as StoredTooLarge
from gengate.tasks import ending
from gengate.tasks.runtime import Runtime

log = logging.getLogger("gengate.media")


class _Input:
    def __init__(self, path: Path, sha: str, ext: str) -> None:
        self.path, self.sha, self.ext = path, sha, ext


def limits(rt: Runtime, deadline: float, max_files: int | None = None) -> Limits:
    s = rt.settings
    return Limits(seconds=max(deadline - time.time(), 0.5), cpu_seconds=s.media_cpu_seconds,
                  max_output_bytes=s.media_max_output_bytes, max_memory_bytes=s.media_max_memory_bytes,
                  max_files=s.media_max_files if max_files is None else max_files,
                  max_job_bytes=s.media_max_job_bytes, user=s.media_user)


def run(rt: Runtime, job: Job) -> None:
    """The submit step of a queued media job (tasks/pipeline.py hands it here; a job past this step
    is moved on by the pipeline's `resume` like any other)."""
    with job_dir(rt.settings.media_work_dir) as workdir:
        try:
            check_free_space(workdir, rt.settings.media_max_job_bytes)  # before a byte is fetched
        except MediaNoSpace as exc:
            log.warning("job %s: %s", job.job_id, exc)
            ending.fail_input(rt, job, str(exc), error="ProcessingError", code="worker_disk_full")
            return
        try:
            inputs = _fetch_inputs(rt, job, workdir)
        except (UnsafeURL, FetchError, _TooManyInputs) as exc:
            ending.fail_input(rt, job, str(exc))
            return
        if ending.settled_by_cache(rt, job, [i.sha for i in inputs.values()]):
            return
        deadline = time.time() + rt.settings.media_time_limit_seconds
        won, _ = rt.store.transition(job.job_id, states.PROCESSING, allowed_from=(states.QUEUED,),
                                     submit_deadline=deadline + 15)
        if not won:
            return
        job.status = states.PROCESSING
        try:
            made = _OPERATIONS[job.mode](rt, job, inputs, workdir, deadline)
        except MediaCancelled:
            log.info("job %s: cancelled while FFmpeg ran; stopped it", job.job_id)
            rt.store.unschedule(job.job_id)
            return
        except (UnsafeCommand, ValueError) as exc:
            ending.fail_input(rt, job, str(exc))
            return
        except MediaNoSpace as exc:
            log.warning("job %s: %s", job.job_id, exc)
            ending.fail_input(rt, job, str(exc), error="ProcessingError", code="worker_disk_full")
            return
        except (MediaFailed, MediaToolMissing) as exc:
            ending.fail_input(rt, job, str(exc), error="ProcessingError", code="ffmpeg_failed")
            return
        _complete(rt, job, made)


# -- inputs ------------------------------------------------------------------------------------------

class _TooManyInputs(ValueError):
    """The job names more input files than a media job may have."""


def _fetch_inputs(rt: Runtime, job: Job, workdir: Path) -> dict[str, _Input]:
    """Each input as a local file with its content hash: ours copied from storage (never
    re-downloaded), others fetched through the safe fetcher, hashed while written. At most
    GENGATE_MEDIA_MAX_INPUTS of them, GENGATE_MEDIA_MAX_INPUT_BYTES together."""
    named = cache.named_inputs(job.input)
    s = rt.settings
    if len(named) > s.media_max_inputs:
        raise _TooManyInputs(f"{len(named)} input files; a media job may have at most {s.media_max_inputs}")
    got: dict[str, _Input] = {}
    budget = s.media_max_input_bytes
    for field, url in named:
        name = field.rsplit(".", 1)[-1] if field.startswith("input_files.") else "input"
        got[name] = _own_input(rt, url, workdir, name, budget) or _download(rt, url, workdir, name, budget)
        budget -= got[name].path.stat().st_size
    return got


def _over_budget(url: str, budget: int, rt: Runtime) -> FetchError:
    return TooLarge(f"{url}: the input files of one media job may hold {rt.settings.media_max_input_bytes} bytes "
                    f"together; {max(budget, 0)} were left for this one")


def _own_input(rt: Runtime, url: str, workdir: Path, name: str, budget: int) -> _Input | None:
    own = cache.own_name(url, rt.settings.file_url_bases)
    if own is None:
        return None
    key, field, encoding = cache.own_hash_lookup(*own)
    sha = cache.decode_own_hash(rt.redis.hget(key, field), encoding)
    if sha is None:
        raise FetchError(f"{url} is not a file of this gateway (unknown or expired)")
    ext = own[1].rsplit(".", 1)[-1].lower()
    path = workdir / f"{name}.{ext}"
    # A copy, never a link: FFmpeg may write to what it reads (it is not trusted), and a stored
    # file is shared by every job and cache entry that names it.
    try:
        rt.storage.copy_to(*own, path, max_bytes=max(budget, 0))
    except FileNotFoundError:
        raise FetchError(f"{url} is not a file of this gateway (unknown or expired)") from None
    except StoredTooLarge:
        raise _over_budget(url, budget, rt) from None
    return _Input(path, sha, ext)


def _download(rt: Runtime, url: str, workdir: Path, name: str, budget: int) -> _Input:
    part = workdir / f"{name}.part"
    limit = min(rt.settings.fetch_max_bytes, max(budget, 0))
    with open(part, "wb") as f:
        try:
            fetched = fetch_hash(url, into=f, max_bytes=limit)
        except TooLarge:
            if limit < rt.settings.fetch_max_bytes:
                raise _over_budget(url, budget, rt) from None
            raise
    ext = _ext_from(url, fetched.media_type or "")
    path = workdir / f"{name}.{ext}"
    part.rename(path)
    return _Input(path, fetched.sha256, ext)


def _ext_from(url: str, content_type: str) -> str:
    last = url.split("?", 1)[0].rsplit("/", 1)[-1]
    if "." in last and 1 <= len(last.rsplit(".", 1)[1]) <= 5 and last.rsplit(".", 1)[1].isalnum():
        return last.rsplit(".", 1)[1].lower()
    ext = extension_for(content_type or "application/octet-stream").lstrip(".")
    return ext if ext != "bin" else "mp4"


# -- operations: each returns [(name suffix, path)] with the main output first, and its metadata -----

Made = tuple[list[tuple[str, Path]], dict[str, Any] | None]


def _watch(rt: Runtime, job: Job) -> Callable[[], bool]:
    def cancelled() -> bool:
        current = rt.store.get(job.job_id)
        return current is None or current.status == states.CANCELLED
    return cancelled


def _ffmpeg(rt: Runtime, job: Job, args: list[str], workdir: Path, deadline: float) -> None:
    run_ffmpeg(ops.guarded(args), workdir=workdir, limits=limits(rt, deadline), cancelled=_watch(rt, job))


def _trim(rt: Runtime, job: Job, inputs: dict[str, _Input], workdir: Path, deadline: float) -> Made:
    src = inputs["input"]
    info = probe(src.path, limits=limits(rt, deadline), workdir=workdir)
    p = job.input
    start = float(p.get("start") or 0.0)
    total = ops.summarize(info)["duration"]
    if total is not None and start >= total:
        raise ValueError(f"start {start:g} s is past the end of the media ({total:g} s)")
    duration = p.get("duration") if p.get("duration") is not None else (
        p["end"] - start if p.get("end") is not None else None)
    out = workdir / "out" / f"trimmed.{ops.output_ext(info, src.ext)}"
    out.parent.mkdir()
    _ffmpeg(rt, job, ops.trim_args(str(src.path), str(out), start=start, duration=duration,
                                   precise=bool(p.get("precise")), video=ops.has_video(info)), workdir, deadline)
    return [("", out)], _describe(rt, out, workdir, deadline)


def _resize(rt: Runtime, job: Job, inputs: dict[str, _Input], workdir: Path, deadline: float) -> Made:
    src = inputs["input"]
    info = probe(src.path, limits=limits(rt, deadline), workdir=workdir)
    p = job.input
    video = ops.has_video(info) and ops.output_ext(info, src.ext) == "mp4"
    if not ops.has_video(info):
        raise ValueError("resize needs an image or a video; this input has no picture")
    if video and (p["width"] % 2 or p["height"] % 2):
        raise ValueError("width and height of a video must be even numbers (H.264 needs them)")
    out = workdir / "out" / f"resized.{ops.output_ext(info, src.ext)}"
    out.parent.mkdir()
    _ffmpeg(rt, job, ops.resize_args(str(src.path), str(out), width=p["width"], height=p["height"], fit=p["fit"],
                                     video=video), workdir, deadline)
    return [("", out)], _describe(rt, out, workdir, deadline)


def _slice(rt: Runtime, job: Job, inputs: dict[str, _Input], workdir: Path, deadline: float) -> Made:
    src = inputs["input"]
    info = probe(src.path, limits=limits(rt, deadline), workdir=workdir)
    if not ops.has_video(info):
        raise ValueError("slice needs a video")
    p = job.input
    ranges = [(r["start"], r["end"]) for r in p["ranges"]] if p.get("ranges") else None
    segments = ops.slice_segments(ops.summarize(info)["duration"] or 0.0, every=p.get("every"), at=p.get("at"),
                                  count=p.get("count"), ranges=ranges, max_segments=rt.settings.media_max_segments)
    outdir = workdir / "out"
    outdir.mkdir()
    made: list[tuple[str, Path]] = []
    listing = []
    for seg in segments:
        path = outdir / f"segment_{seg.index:03d}.mp4"
        _ffmpeg(rt, job, ops.segment_args(str(src.path), str(path), seg, reencode=p.get("codec") == "reencode"),
                workdir, deadline)
        made.append((f"_seg{seg.index}", path))
        item: dict[str, Any] = {"index": seg.index, "filename": path.name, "suffix": f"_seg{seg.index}",
                                "start": round(seg.start, 3), "end": round(seg.end, 3)}
        if p.get("thumbnails", True):
            thumb = outdir / f"segment_{seg.index:03d}.jpg"
            _ffmpeg(rt, job, ops.thumbnail_args(str(src.path), str(thumb), seg.start), workdir, deadline)
            made.append((f"_seg{seg.index}_thumb", thumb))
            item["thumbnail_suffix"] = f"_seg{seg.index}_thumb"
        listing.append(item)
    # The job's own output is the first segment; every segment is listed in the metadata.
    return [("", made[0][1]), *made], {"segments": listing, "count": len(listing)}


def _command(rt: Runtime, job: Job, inputs: dict[str, _Input], workdir: Path, deadline: float) -> Made:
    names = job.input["output_files"]
    outdir = workdir / "out"
    outdir.mkdir()
    outputs = {k: str(outdir / f"{k}_{names[k]}") for k in names}
    plan = plan_command(job.input["command"], {k: str(v.path) for k, v in inputs.items()}, outputs,
                        max_outputs=rt.settings.media_max_outputs)
    # The run may create the declared outputs and nothing else.
    run_ffmpeg(plan.args, workdir=workdir, limits=limits(rt, deadline, max_files=len(outputs)),
               cancelled=_watch(rt, job))
    made, listing = [], []
    for i, key in enumerate(sorted(names, key=cache.placeholder_order)):
        path = Path(outputs[key])
        if not path.is_file():
            raise MediaFailed(f"the command did not write {{{{{key}}}}} ({names[key]})")
        made.append(("" if i == 0 else f"_{key}", path))
        listing.append({"name": key, "filename": names[key], "suffix": "" if i == 0 else f"_{key}"})
    return made, {"outputs": listing}


_OPERATIONS: dict[str, Callable[..., Made]] = {"trim": _trim, "resize": _resize, "slice": _slice, "command": _command}


def _describe(rt: Runtime, path: Path, workdir: Path, deadline: float) -> dict[str, Any]:
    return ops.summarize(probe(path, limits=limits(rt, deadline), workdir=workdir), path.stat().st_size)


# -- outputs -----------------------------------------------------------------------------------------

def _complete(rt: Runtime, job: Job, made: Made) -> None:
    files, metadata = made
    stored: dict[str, StoredFile] = {}
    for suffix, path in files:
        if suffix not in stored:
            stored[suffix] = _store(rt, job.job_id + suffix, path)
    main = stored[""]
    if metadata is not None:
        metadata = _with_urls(metadata, stored)
    entry = cache.Entry(main.sha256, main.media_type, job.job_id,
                        tuple((sfx, f.sha256, f.media_type) for sfx, f in stored.items() if sfx), metadata)
    ending.complete(rt, job, entry, main.url)


def _store(rt: Runtime, stem: str, path: Path) -> StoredFile:
    def chunks():
        with open(path, "rb") as f:
            while block := f.read(1 << 16):
                yield block
    return rt.storage.put_output(stem, chunks(), media_type_for(path.name), max_bytes=rt.settings.max_output_bytes)


def _with_urls(metadata: dict[str, Any], stored: dict[str, StoredFile]) -> dict[str, Any]:
    """Replace the name suffixes the operations used with the stored files' URLs and types."""
    for item in metadata.get("segments", []) + metadata.get("outputs", []):
        f = stored[item.pop("suffix")]
        item.update(url=f.url, media_type=f.media_type, size_bytes=f.size)
        if "thumbnail_suffix" in item:
            item["thumbnail_url"] = stored[item.pop("thumbnail_suffix")].url
    return metadata
