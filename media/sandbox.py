"""A user's FFmpeg command, parsed (no shell) and checked before anything runs.

The user writes an ordinary ffmpeg command with `{{in_N}}` / `{{out_N}}` placeholders; we never
let it name a file, a URL, a device or a program of its own. `plan_command` walks the arguments
the way ffmpeg 5.1's own parser does (which options take a value, which are flags, which tokens
are input and output names), refuses anything that could reach outside the job, substitutes the
placeholders with the job's private paths and adds our guards: a protocol and a demuxer whitelist
before every input, so even an uploaded playlist or concat list cannot make ffmpeg open another
file. Pure functions; `media.run` runs the result.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

MAX_COMMAND_CHARS = 8_000
MAX_TOKENS = 400
MAX_OUTPUTS = 8  # the default of GENGATE_MEDIA_MAX_OUTPUTS; callers pass the setting


class UnsafeCommand(ValueError):
    """The command is refused; the message says why, naming the offending token or option."""


@dataclass(frozen=True)
class Plan:
    args: list[str]  # ffmpeg's argv without the program name, placeholders replaced by paths
    inputs: dict[str, str]  # "in_1" -> the local path used
    outputs: dict[str, str]  # "out_1" -> the local path used


# -- formats -----------------------------------------------------------------------------------------

# Demuxers that read exactly one file and never open another one (no playlists, lists, references).
# ffmpeg matches a demuxer whose name is a list ("mov,mp4,m4a,...") when any part is listed.
SAFE_DEMUXERS = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "mp3", "wav", "ogg", "flac", "aac",
    "gif", "image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "mpegts", "avi", "flv",
)
# Muxers that write exactly the one file they are given (no segments, playlists, side files, devices).
SAFE_MUXERS = frozenset({
    "mp4", "mov", "ipod", "3gp", "matroska", "webm", "mp3", "wav", "ogg", "oga", "opus", "flac", "adts",
    "ac3", "gif", "apng", "webp", "image2", "mjpeg", "null", "mpegts", "avi", "flv", "h264", "hevc",
    "rawvideo", "s16le", "f32le", "srt", "webvtt", "ass",
})
# Output names whose extension would make ffmpeg pick a muxer that writes more files than named.
_MULTI_FILE_EXTENSIONS = frozenset({"m3u8", "m3u", "mpd", "ism", "isml", "sdp", "ffconcat", "f4m"})

# Guards put before every `-i`: only the local file itself, and only through a listed demuxer.
INPUT_GUARD = ("-protocol_whitelist", "file", "-format_whitelist", ",".join(SAFE_DEMUXERS))
_PREAMBLE = ("-nostdin", "-hide_banner", "-y", "-loglevel", "error")


def input_guard() -> list[str]:
    """The options to put before every `-i` of a user's file, also for our own argument lists."""
    return list(INPUT_GUARD)


# -- options -----------------------------------------------------------------------------------------

# Options of ffmpeg 5.1 that take no value (OPT_BOOL without HAS_ARG, and -vstats/-report).
_FLAGS = frozenset({
    "y", "n", "ignore_unknown", "copy_unknown", "recast_media", "accurate_seek", "benchmark",
    "benchmark_all", "stdin", "dump", "hex", "re", "copyts", "start_at_zero", "shortest", "bitexact",
    "xerror", "copyinkf", "auto_conversion_filters", "stats", "debug_ts", "find_stream_info", "vn",
    "an", "sn", "dn", "psnr", "qphist", "force_fps", "fix_sub_duration", "hide_banner", "vstats", "report",
})
# Boolean options ffmpeg also accepts as `-noNAME` (no value). autorotate and autoscale take a
# value in 5.1 (`-autorotate 0`) but their `-no` forms do not.
_NEGATABLE = (_FLAGS - {"vstats", "report"}) | {"autorotate", "autoscale"}

# Options that print something and exit, or list devices; `-h` even swallows an optional value.
_INFORMATIONAL = frozenset({
    "h", "?", "help", "-help", "L", "version", "buildconf", "formats", "muxers", "demuxers", "devices",
    "codecs", "decoders", "encoders", "bsfs", "protocols", "filters", "pix_fmts", "layouts",
    "sample_fmts", "dispositions", "colors", "sources", "sinks", "hwaccels",
})

_REFUSED_OPTIONS: dict[str, str] = {
    "filter_script": "it reads a filter graph from a file; put the graph in -filter/-vf/-af",
    "filter_complex_script": "it reads a filter graph from a file; put the graph in -filter_complex",
    "dump_attachment": "it writes attachments to extra files",
    "attach": "it reads an extra file into the output",
    "progress": "it writes progress to a file or URL",
    "vstats": "it writes a statistics file",
    "vstats_file": "it writes a statistics file",
    "passlogfile": "it writes a two-pass log file",
    "pass": "two-pass encoding writes log files",
    "sdp_file": "it writes an SDP file",
    "report": "it writes a report file",
    "init_hw_device": "hardware devices are not available",
    "filter_hw_device": "hardware devices are not available",
    "vaapi_device": "hardware devices are not available",
    "qsv_device": "hardware devices are not available",
    "protocol_whitelist": "the gateway sets it",
    "protocol_blacklist": "the gateway sets it",
    "format_whitelist": "the gateway sets it",
    "enable_drefs": "it lets a movie file open other files",
    "use_absolute_path": "it lets a movie file open other files",
    "allowed_extensions": "it is a playlist option; playlists are not accepted",
    "safe": "it is a concat-list option; concat lists are not accepted",
    "pre": "it reads preset files from the server",
    "fpre": "it reads preset files from the server",
    "vpre": "it reads preset files from the server",
    "apre": "it reads preset files from the server",
    "spre": "it reads preset files from the server",
    "n": "outputs are always new files here",
}
# Families of options that write side files (segments, playlists, manifests, stats) or use hardware.
_REFUSED_PREFIXES = ("hwaccel", "hls", "segment_", "dash", "stats_enc", "stats_mux", "sdp_")
# Option names that name a file, a directory or a URL, in any muxer, codec or protocol.
_FILE_OPTION = re.compile(r"(?!profile$)\w*(file|filename|_path|_dir|_url|logfile)")

# An option name with an optional stream specifier (-c:v, -b:a:0, -metadata:s:a:0, -map_metadata:g).
_OPTION_NAME = re.compile(r"[A-Za-z0-9_?][\w\-.+]*(:[\w:.#+\-]*)?")

_FILTER_OPTIONS = frozenset({"vf", "af", "filter", "filter_complex", "lavfi"})


# -- values ------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{(in|out)_([1-9][0-9]{0,2})\}\}")
_PROTOCOLS = (
    r"file|https?|ftps?|tcp|udp|rtp|rtmp\w*|rtsp|srt|concat|concatf|subfile|pipe|fd|data|crypto|async"
    r"|cache|gophers?|tls|unix|sftp|smb|icecast|mmsh?|mmst|hls|prompeg|ipfs|ipns|zmq|srtp|bluray|dvd"
    r"|librtmp\w*|libsmbclient|libssh|md5|sctp|android_content|tee|fifo"
)
# A protocol prefix as ffmpeg recognises it: `name:` or the option form `name,,opts,,:`.
_PROTOCOL = re.compile(rf"(?<![A-Za-z0-9_])({_PROTOCOLS})\s*(:|,,)", re.IGNORECASE)
_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A path: a value starting with / ./ ../ ~, or / right after a separator (key=/etc/..., '/x', a:/x).
_PATH = re.compile(r"(^(\.{0,2}/|~))|([=:'\",;|\[\]\s\\@]/)")

# Filters that read or write files, load plugins or models, open sockets, or need hardware.
_FILTER_NAMES = (
    r"movie|amovie|sendcmd|asendcmd|zmq|azmq|subtitles|ass|lut3d|lut1d|frei0r|frei0r_src|ladspa|lv2"
    r"|sofalizer|vidstabdetect|vidstabtransform|signature|dnn_\w+|derain|sr|arnndn|asr|flite|libvmaf"
    r"|coreimage\w*|lensfun|find_rect|cover_rect|removelogo|ocr|qrencode\w*|openclsrc|program_opencl"
    r"|libplacebo|hwupload\w*|hwdownload|hwmap|fsync|whisper"
    r"|\w+_(?:opencl|vulkan|cuda|vaapi|qsv|npp|videotoolbox)"
)
_FILTER_NAME = re.compile(rf"(?<![A-Za-z0-9_])({_FILTER_NAMES})(?![A-Za-z0-9_])\s*(@[\w.]*)?\s*([=,;\[]|$)")
# Filter option keys naming a file, a model, a plugin or a result written out.
_FILTER_KEY = re.compile(
    r"(?<![A-Za-z0-9_])(?!profile\s*=)([A-Za-z0-9_]*(file|filename|path)|model|sofa|object|input|result"
    r"|stats_file|log_path|plugin)\s*=",
    re.IGNORECASE,
)


def plan_command(command: str, inputs: dict[str, str], outputs: dict[str, str], *,
                 max_outputs: int = MAX_OUTPUTS) -> Plan:
    """Check `command` and build ffmpeg's arguments; UnsafeCommand saying why when refused.

    `inputs` maps "in_N" to the local file prepared for it, `outputs` maps "out_N" to the local
    path it must be written to (both made by the caller, inside the job's private directory).
    """
    _check_paths(inputs, outputs)
    if len(outputs) > max_outputs:
        raise UnsafeCommand(f"at most {max_outputs} output files are allowed ({len(outputs)} given)")
    tokens = _split(command)
    walk = _Walk(inputs, outputs)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("-") and len(token) > 1:
            name = token[1:]
            base = name.split(":", 1)[0]
            _check_option_name(token, name, base)
            if base == "i":
                if i + 1 >= len(tokens):
                    raise UnsafeCommand("-i needs an input: write `-i {{in_N}}`")
                walk.input(tokens[i + 1])
                i += 2
            elif base in _FLAGS or (base.startswith("no") and base[2:] in _NEGATABLE):
                walk.args.append(token)
                i += 1
            else:
                if i + 1 >= len(tokens):
                    raise UnsafeCommand(f"option {token} needs a value")
                walk.option(token, base, tokens[i + 1])
                i += 2
        else:
            walk.output(token)
            i += 1
    return walk.finish(max_outputs)


class _Walk:
    """The arguments seen so far and the options waiting for the file they belong to."""

    def __init__(self, inputs: dict[str, str], outputs: dict[str, str]) -> None:
        self.inputs, self.outputs = inputs, outputs
        self.args: list[str] = list(_PREAMBLE)
        self.used_in: set[str] = set()
        self.used_out: set[str] = set()
        self.format: str | None = None  # the -f waiting for its file

    def option(self, token: str, base: str, value: str) -> None:
        if base in _FILTER_OPTIONS:
            check_filtergraph(value, token)  # first, so a refusal names the filter
        _check_value(token, value)
        if base == "f":
            if value not in SAFE_MUXERS and value not in SAFE_DEMUXERS:
                raise UnsafeCommand(f"-f {value} is not allowed: only ordinary single-file formats "
                                    f"({', '.join(sorted(SAFE_MUXERS))})")
            self.format = value
        elif base == "stream_loop":
            try:
                loops = int(value)
            except ValueError:
                raise UnsafeCommand(f"-stream_loop needs a whole number, not {value!r}") from None
            if loops < 0:
                raise UnsafeCommand("-stream_loop with a negative count loops forever; give a count")
        self.args += [token, value]

    def input(self, value: str) -> None:
        kind, key = _placeholder(value, "-i")
        if kind != "in":
            raise UnsafeCommand(f"{value} is an output; -i takes an input placeholder {{{{in_N}}}}")
        if key not in self.inputs:
            raise UnsafeCommand(f"{value}: there is no such input (declared: {_names(self.inputs)})")
        if self.format is not None and self.format not in SAFE_DEMUXERS:
            raise UnsafeCommand(f"-f {self.format} cannot read an input; allowed input formats: "
                                f"{', '.join(SAFE_DEMUXERS)}")
        self.format = None
        self.used_in.add(key)
        self.args += [*INPUT_GUARD, "-i", self.inputs[key]]

    def output(self, token: str) -> None:
        if "{{" not in token:
            raise UnsafeCommand(f"{token!r} is not allowed here: every output must be a placeholder "
                                "{{out_N}} (and every input `-i {{in_N}}`)")
        kind, key = _placeholder(token, "output")
        if kind != "out":
            raise UnsafeCommand(f"{token} is an input; write it as `-i {token}`")
        if key not in self.outputs:
            raise UnsafeCommand(f"{token}: there is no such output (declared: {_names(self.outputs)})")
        if key in self.used_out:
            raise UnsafeCommand(f"{token} is written more than once; each output appears exactly once")
        if self.format is not None and self.format not in SAFE_MUXERS:
            raise UnsafeCommand(f"-f {self.format} cannot write an output; allowed output formats: "
                                f"{', '.join(sorted(SAFE_MUXERS))}")
        self.format = None
        self.used_out.add(key)
        self.args.append(self.outputs[key])

    def finish(self, max_outputs: int) -> Plan:
        if not self.used_out:
            raise UnsafeCommand("the command has no output: end it with {{out_1}}")
        if len(self.used_out) > max_outputs:
            raise UnsafeCommand(f"at most {max_outputs} outputs are allowed")
        for key in sorted(set(self.inputs) - self.used_in):
            raise UnsafeCommand(f"input {{{{{key}}}}} is declared but the command never reads it (-i {{{{{key}}}}})")
        for key in sorted(set(self.outputs) - self.used_out):
            raise UnsafeCommand(f"output {{{{{key}}}}} is declared but the command never writes it")
        return Plan(args=self.args, inputs=dict(self.inputs), outputs=dict(self.outputs))


def _split(command: str) -> list[str]:
    if len(command) > MAX_COMMAND_CHARS:
        raise UnsafeCommand(f"the command is longer than {MAX_COMMAND_CHARS} characters")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in command):
        raise UnsafeCommand("the command contains control characters")
    try:
        tokens = shlex.split(command, comments=False, posix=True)
    except ValueError as exc:
        raise UnsafeCommand(f"the command cannot be parsed: {exc} (check its quotes)") from None
    if tokens and tokens[0] in ("ffmpeg", "ffmpeg.exe"):
        tokens = tokens[1:]
    if not tokens:
        raise UnsafeCommand("the command is empty")
    if len(tokens) > MAX_TOKENS:
        raise UnsafeCommand(f"the command has more than {MAX_TOKENS} arguments")
    for token in tokens:
        if any(ord(c) < 32 for c in token):
            raise UnsafeCommand(f"argument {token!r} contains control characters")
    return tokens


def _check_option_name(token: str, name: str, base: str) -> None:
    if token == "--":
        raise UnsafeCommand("`--` is not allowed: outputs must be {{out_N}} placeholders")
    if name.startswith("/"):
        raise UnsafeCommand(f"{token}: loading an option's value from a file (-/option) is not allowed")
    if not _OPTION_NAME.fullmatch(name):
        raise UnsafeCommand(f"{token!r} is not an ffmpeg option")
    if base in _INFORMATIONAL:
        raise UnsafeCommand(f"{token} only prints information; it has no place in a job")
    if base == "i" and name != "i":
        raise UnsafeCommand(f"{token} is not an ffmpeg option; write `-i {{{{in_N}}}}`")
    reason = _REFUSED_OPTIONS.get(base) or (
        _REFUSED_OPTIONS.get(base[2:]) if base.startswith("no") and base[2:] in _NEGATABLE else None)
    if reason:
        raise UnsafeCommand(f"option {token} is not allowed: {reason}")
    if base.startswith(_REFUSED_PREFIXES):
        raise UnsafeCommand(f"option {token} is not allowed: it writes side files or needs hardware")
    if _FILE_OPTION.fullmatch(base):
        raise UnsafeCommand(f"option {token} is not allowed: it names a file, directory or URL")


def _check_value(option: str, value: str) -> None:
    if "{{" in value or "}}" in value:
        if _PLACEHOLDER.fullmatch(value):
            raise UnsafeCommand(f"{value} cannot be the value of {option}: placeholders go after -i "
                                "(inputs) or stand alone (outputs)")
        raise UnsafeCommand(f"{value!r} (value of {option}): a placeholder must be a whole argument, "
                            "{{in_N}} or {{out_N}}")
    _check_reach(value, f"{option} {value!r}")


def _check_reach(text: str, where: str) -> None:
    """Refuse URLs, protocol prefixes and file-system paths anywhere in an argument."""
    for candidate in (text, _unquoted(text)):
        m = _PROTOCOL.search(candidate) or _ANY_URL.search(candidate)
        if m:
            raise UnsafeCommand(f"{where}: protocol {m.group(0).strip()!r} is not allowed; "
                                "only {{in_N}} files can be read")
        if ".." in candidate:
            raise UnsafeCommand(f"{where}: '..' is not allowed (no paths outside the job)")
        if _PATH.search(candidate):
            raise UnsafeCommand(f"{where}: file-system paths are not allowed; only {{{{in_N}}}} and "
                                "{{out_N}} name files")


def _unquoted(text: str) -> str:
    # ffmpeg strips quotes and backslash escapes (at two levels in filter graphs) before it reads
    # names and keys, so `mo\vie`, `'movie'` and `text\file` must be seen as what they become.
    return text.replace("\\", "").replace("'", "").replace('"', "")


def check_filtergraph(graph: str, option: str = "-filter_complex") -> None:
    """Refuse filter graphs with filters that read or write files, load code, or use devices."""
    for candidate in (graph, _unquoted(graph)):
        m = _FILTER_NAME.search(candidate)
        if m:
            raise UnsafeCommand(f"{option}: the filter {m.group(1)!r} is not allowed (it reads or writes "
                                "files, loads plugins or models, or needs hardware)")
        for name in _filter_names(candidate):
            if re.fullmatch(_FILTER_NAMES, name):
                raise UnsafeCommand(f"{option}: the filter {name!r} is not allowed")
        m = _FILTER_KEY.search(candidate)
        if m:
            raise UnsafeCommand(f"{option}: the filter option {m.group(1)!r} is not allowed "
                                "(it names a file, a model or a plugin)")


def _filter_names(graph: str) -> list[str]:
    """The filter names of a graph: each chain element without its [labels], up to = or @."""
    names: list[str] = []
    for part in re.split(r"[,;]", graph):
        part = re.sub(r"^\s*(\[[^\]]*\]\s*)*", "", part)
        m = re.match(r"([A-Za-z0-9_]+)", part)
        if m:
            names.append(m.group(1))
    return names


def _names(mapping: dict[str, str]) -> str:
    return ", ".join("{{%s}}" % k for k in sorted(mapping)) or "none"


def _placeholder(token: str, where: str) -> tuple[str, str]:
    m = _PLACEHOLDER.fullmatch(token)
    if not m:
        raise UnsafeCommand(f"{token!r} ({where}) is not a placeholder; write {{{{in_N}}}} or {{{{out_N}}}}")
    return m.group(1), f"{m.group(1)}_{m.group(2)}"


def _check_paths(inputs: dict[str, str], outputs: dict[str, str]) -> None:
    # The caller builds these from the user's file names: make sure none of them can turn into a
    # pattern, a playlist, a protocol or a path outside the job on ffmpeg's side.
    for kind, mapping in (("in", inputs), ("out", outputs)):
        for key, path in mapping.items():
            if not re.fullmatch(rf"{kind}_[1-9][0-9]{{0,2}}", key):
                raise UnsafeCommand(f"{key!r} is not a valid {kind}put name ({kind}_1, {kind}_2, ...)")
            if not os.path.isabs(path) or os.path.normpath(path) != path:
                raise UnsafeCommand(f"{key}: {path!r} is not an absolute, normalised local path")
            if any(c in path for c in "%*?[]") or any(ord(c) < 32 for c in path):
                raise UnsafeCommand(f"{key}: the file name {os.path.basename(path)!r} has characters "
                                    "ffmpeg would treat as a pattern; rename it")
            if kind == "out" and path.rsplit(".", 1)[-1].lower() in _MULTI_FILE_EXTENSIONS:
                raise UnsafeCommand(f"{key}: {os.path.basename(path)!r} would make ffmpeg write a "
                                    "playlist or manifest with extra files; choose another format")
