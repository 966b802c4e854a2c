"""The client side of the `gengate` command: `generate image|video|speech|music|transcription` and
`jobs list|show|cancel|wait`, on the Python client (`gengate.client`), against any gateway.

Exit codes: 0 done, 1 the job failed, was cancelled or did not finish in time, 2 the request was
refused (the API's message is printed) or the gateway could not be reached. Progress goes to
stderr (a live display on a terminal, plain lines otherwise); stdout carries only the result: the
output file's path, a job id with --no-wait, JSON for `jobs show`.
"""

from __future__ import annotations

import argparse
import json
import re
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from gengate.client import GatewayAPIError, GatewayClient, GatewayConnectionError, Job, WaitTimeout

DEFAULT_MODELS = {"image": "flux-schnell", "video": "kling-v3", "speech": "eleven_v3", "music": "music_v1",
                  "transcription": "whisper"}
_URL = re.compile(r"^https?://", re.IGNORECASE)
_STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "dim", "processing": "yellow", "queued": "cyan"}


class Refused(Exception):
    """A usage problem found before any request (exit 2)."""


# -- wiring ---------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--api-key", help="default: GENGATE_API_KEY")
    conn.add_argument("--base-url", help="default: GENGATE_BASE_URL, else http://127.0.0.1:8000/v1")
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument("-o", "--output", help="where to save the output (default <job_id>.<ext>; a directory works)")
    wait.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the job (default 600)")

    gen = sub.add_parser("generate", help="create a job, follow it live, download its output").add_subparsers(
        dest="capability", required=True, metavar="{image,video,speech,music,transcription}")
    for capability in DEFAULT_MODELS:
        p = gen.add_parser(capability, parents=[conn, wait], help=f"generate {capability}")
        p.add_argument("--model", "-m", default=DEFAULT_MODELS[capability],
                       help=f"model (default {DEFAULT_MODELS[capability]}); provider:model forces the provider")
        if capability == "speech":
            p.add_argument("text_arg", nargs="?", metavar="TEXT", help="the text to speak (or --text)")
            p.add_argument("--text", "-t")
            p.add_argument("--voice", help="rachel, domi, sarah, antoni, elli, josh, arnold, adam or sam")
        elif capability == "transcription":
            p.add_argument("audio_arg", nargs="?", metavar="AUDIO", help="URL or local file (or --audio)")
            p.add_argument("--audio", help="URL or local file of the audio; a file is uploaded first")
            p.add_argument("--language", help="language code, e.g. en (auto-detected if omitted)")
        else:
            p.add_argument("prompt_arg", nargs="?", metavar="PROMPT", help="the prompt (or --prompt)")
            p.add_argument("--prompt", "-p")
            if capability in ("image", "video"):
                p.add_argument("--aspect-ratio", help="e.g. 16:9, 9:16, 1:1")
                p.add_argument("--file", "-f", action="append", default=[], dest="files", metavar="URL_OR_PATH",
                               help="input file (repeatable); a local path is uploaded first")
            if capability in ("video", "music"):
                p.add_argument("--duration", type=float, help="seconds")
        p.add_argument("--provider-options", type=_json_object, metavar="JSON",
                       help="object passed to the provider untouched")
        p.add_argument("--idempotency-key", help="a retry with the same key and request returns the same job")
        p.add_argument("--no-cache", action="store_const", const="no-cache", dest="cache_control",
                       help="skip the result cache look-up (the result is still stored)")
        p.add_argument("--no-store", action="store_const", const="no-store", dest="cache_control",
                       help="bypass the result cache")
        p.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
        p.set_defaults(fn=_guarded(cmd_generate))

    jobs = sub.add_parser("jobs", help="the account's jobs").add_subparsers(dest="jobs_command", required=True)
    p = jobs.add_parser("list", parents=[conn], help="list jobs, newest first")
    p.add_argument("--status", choices=("queued", "processing", "completed", "failed", "cancelled"))
    p.add_argument("--capability", choices=tuple(DEFAULT_MODELS))
    p.add_argument("--model")
    p.add_argument("--limit", type=int, default=20, help="page size, 1-100 (default 20)")
    p.add_argument("--cursor", help="next_cursor of a previous page")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.set_defaults(fn=_guarded(cmd_jobs_list))
    p = jobs.add_parser("show", parents=[conn], help="print a job as JSON")
    p.add_argument("job_id")
    p.set_defaults(fn=_guarded(cmd_jobs_show))
    p = jobs.add_parser("cancel", parents=[conn], help="cancel a queued or processing job")
    p.add_argument("job_id")
    p.set_defaults(fn=_guarded(cmd_jobs_cancel))
    p = jobs.add_parser("wait", parents=[conn, wait], help="follow a job live and download its output")
    p.add_argument("job_id")
    p.set_defaults(fn=_guarded(cmd_jobs_wait))


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _guarded(fn: Callable[[argparse.Namespace, GatewayClient, Console], int]) -> Callable[[argparse.Namespace], int]:
    """Open the client, run the command, and turn the client's errors into a message and exit code."""

    def run(args: argparse.Namespace) -> int:
        err = Console(stderr=True, highlight=False, soft_wrap=True)  # no wrapping: lines may be parsed
        if not (args.api_key or os.environ.get("GENGATE_API_KEY")):
            err.print("error: no API key: pass --api-key or set GENGATE_API_KEY", markup=False)
            return 2
        client = GatewayClient(args.api_key, args.base_url)
        try:
            with client:
                return fn(args, client, err)
        except Refused as exc:
            err.print(f"error: {exc}", markup=False)
            return 2
        except GatewayAPIError as exc:
            where = f" ({exc.field})" if exc.field else f" (provider {exc.provider})" if exc.provider else ""
            err.print(f"error: {exc.message}{where} [{exc.status_code} {exc.error}]", markup=False)
            return 2
        except GatewayConnectionError as exc:
            err.print(f"error: cannot reach the gateway: {exc}", markup=False)
            return 2
        except WaitTimeout as exc:
            err.print(f"{exc}; `gengate jobs wait {exc.job_id}` goes on waiting", markup=False)
            return 1
        except KeyboardInterrupt:
            return 130

    return run


# -- generate -------------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace, client: GatewayClient, err: Console) -> int:
    capability = args.capability
    params: dict[str, Any] = {"model": args.model, "provider_options": args.provider_options,
                              "idempotency_key": args.idempotency_key, "cache_control": args.cache_control}
    if capability == "speech":
        params.update(text=_one(args.text_arg, args.text, "TEXT", "--text"), voice=args.voice)
    elif capability == "transcription":
        audio = _one(args.audio_arg, args.audio, "AUDIO", "--audio")
        params.update(audio_url=_input_url(client, audio, err), language=args.language)
    else:
        params["prompt"] = _one(args.prompt_arg, args.prompt, "PROMPT", "--prompt")
        params["aspect_ratio"] = getattr(args, "aspect_ratio", None)
        params["duration"] = getattr(args, "duration", None)
        files = getattr(args, "files", [])
        params["files"] = [_input_url(client, f, err) for f in files] or None
    create = getattr(client, f"create_{capability}")
    job = create(**{k: v for k, v in params.items() if v is not None})
    cached = " from the cache" if job.cache_status == "HIT" else ""
    err.print(f"{job.job_id} {job.status}{cached} ({job.model})", markup=False)
    if args.no_wait:
        print(job.job_id)
        return 0
    return _finish(client, job, args, err)


def cmd_jobs_wait(args: argparse.Namespace, client: GatewayClient, err: Console) -> int:
    return _finish(client, client.get_job(args.job_id), args, err)


def _one(positional: str | None, option: str | None, name: str, flag: str) -> str:
    if positional is not None and option is not None:
        raise Refused(f"give {name} or {flag}, not both")
    value = positional if positional is not None else option
    if not value:
        raise Refused(f"{name} is required (as an argument or {flag})")
    return value


def _input_url(client: GatewayClient, value: str, err: Console) -> str:
    """A URL as it is; a local file uploaded first (deduplicated by content hash)."""
    if _URL.match(value):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise Refused(f"{value}: neither an http(s) URL nor a file")
    uploaded = client.upload_file(path)
    again = " (already uploaded)" if uploaded.deduplicated else ""
    err.print(f"uploaded {path} -> {uploaded.url}{again}", markup=False)
    return uploaded.url


def _finish(client: GatewayClient, job: Job, args: argparse.Namespace, err: Console) -> int:
    """Follow the job with a live display, then download its output; the path goes to stdout."""
    if not job.done:
        with _Live(err, job) as live:
            job = client.wait_for_job(job, timeout=args.timeout, on_update=live.update)
    if job.status != "completed":
        err.print(f"{job.job_id} {job.status}" + (f": {job.error}" if job.error else ""), markup=False)
        return 1
    if job.output is None:
        err.print(f"{job.job_id} completed without an output", markup=False)
        return 1
    with _Download(err) as dl:
        path = client.download(job, args.output, on_progress=dl.update)
    err.print(f"saved {path} ({path.stat().st_size} bytes, {job.output.media_type})", markup=False)
    print(path)
    return 0


class _Live:
    """Status and elapsed time of a job: a spinner on a terminal, one line per change otherwise."""

    def __init__(self, console: Console, job: Job) -> None:
        self.console, self.job, self.started = console, job, time.monotonic()
        self.progress = _progress(console, SpinnerColumn(finished_text="•"), TextColumn("{task.description}"),
                                  TimeElapsedColumn())
        self.last = job.status

    def __enter__(self) -> _Live:
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task(self._text(self.job), total=1)
        return self

    def update(self, job: Job) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=self._text(job), completed=1 if job.done else 0)
        elif job.status != self.last and job.status not in ("failed", "cancelled"):  # _finish says those
            self.console.print(f"{job.job_id} {job.status} ({time.monotonic() - self.started:.1f}s)", markup=False)
        self.last = job.status

    def _text(self, job: Job) -> str:
        return f"{job.job_id} [bold]{job.status}[/] {job.model}"

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


class _Download:
    def __init__(self, console: Console) -> None:
        self.progress = _progress(console, TextColumn("downloading"), BarColumn(), DownloadColumn())
        self.task = None

    def __enter__(self) -> _Download:
        if self.progress is not None:
            self.progress.start()
        return self

    def update(self, done: int, total: int | None) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task("download", total=total)
        self.progress.update(self.task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _progress(console: Console, *columns: Any) -> Progress | None:
    # Without a terminal a live display would only print its last frame: plain lines instead.
    return Progress(*columns, console=console, transient=False) if console.is_terminal else None


# -- jobs -----------------------------------------------------------------------------------------


def cmd_jobs_list(args: argparse.Namespace, client: GatewayClient, err: Console) -> int:
    page = client.list_jobs(status=args.status, capability=args.capability, model=args.model, limit=args.limit,
                            cursor=args.cursor)
    if args.json:
        print(json.dumps({"jobs": [j.raw for j in page.jobs], "next_cursor": page.next_cursor}, indent=2))
        return 0
    rows = [(j.job_id, j.status, j.model, j.created_at[:19].replace("T", " "),
             j.error or (j.output.url if j.output else "")) for j in page.jobs]
    header = ("JOB", "STATUS", "MODEL", "CREATED", "OUTPUT / ERROR")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    out = Console(highlight=False, soft_wrap=True)
    # Aligned columns, one job a line (greppable); on a terminal the last column is cut to fit.
    room = out.width - sum(widths) - 2 * len(widths) if out.is_terminal else None
    for n, row in enumerate([header, *rows]):
        line = Text(no_wrap=True)
        for cell, width in zip(row, widths):
            line.append(cell.ljust(width) + "  ", style=_STATUS_STYLE.get(cell, "") if n else "bold")
        last = row[-1] if room is None or len(row[-1]) <= room else row[-1][:max(room - 1, 0)] + "…"
        line.append(last, style="" if n else "bold")
        out.print(line)
    if page.next_cursor:
        err.print(f"more: --cursor {page.next_cursor}", markup=False)
    return 0


def cmd_jobs_show(args: argparse.Namespace, client: GatewayClient, err: Console) -> int:
    print(json.dumps(client.get_job(args.job_id).raw, indent=2))
    return 0


def cmd_jobs_cancel(args: argparse.Namespace, client: GatewayClient, err: Console) -> int:
    client.cancel_job(args.job_id)
    job = client.get_job(args.job_id)
    if job.status == "cancelled":
        print(f"{job.job_id} cancelled")
    else:
        print(f"{job.job_id} is {job.status}: nothing to cancel")
    return 0

