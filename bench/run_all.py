"""Run every benchmark of bench/ in sequence and write BENCHMARKS.md (the whole file, except its
"## Notes" section, which is kept as it is: findings written by people).

    python3 bench/run_all [--quick] [--only 1,2,...] [--output FILE]
    .venv/bin/python -m bench.run_all ...

--quick: small sizes, for a smoke run (minutes). Without it: the sizes of the recorded figures
(10,000 in-flight jobs of 60 s, 100k stored jobs...; about 40 minutes on a 2-core machine).
Raw numbers also go to bench/results/last.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import HEADER, Figure  # noqa: E402
from bench.stack import ROOT, machine  # noqa: E402

TITLES = {
    "1": "Submission throughput and latency (`bench/submission.py`)",
    "2": "Pipeline overhead (`bench/pipeline.py --latency-only`)",
    "3": "Pipeline throughput (`bench/pipeline.py --throughput-only`)",
    "4": "In-flight capacity (`bench/inflight.py`)",
    "5": "Cache hit (`bench/cache_hit.py`)",
    "6": "Cost growth (`bench/growth.py`)",
    "P": "Profiles (`bench/profile.py`, py-spy)",
    "7": "Footprint of the API process and of the installs (`bench/footprint.py`)",
    "8": "Object storage: local store vs S3 server, worker hosts, large outputs (`bench/storage.py`)",
    "9": "What routing costs a submission (`bench/routing.py`)",
}


def _benches(quick: bool):
    from bench import cache_hit, footprint, growth, inflight, pipeline, profile, routing, storage, submission

    def profiles() -> tuple[list[Figure], list[str]]:
        if profile.py_spy() is None:
            return [], ["py-spy is not installed (.venv/bin/pip install py-spy): no profiles"]
        api = profile.profile_api(4 if quick else 10)
        worker = profile.profile_worker(200 if quick else 1000)
        return [], [*api.splitlines(), "", *worker.splitlines()]

    return {
        "6": lambda: growth.measure(quick),
        "5": lambda: cache_hit.measure(quick),
        "1": lambda: submission.measure(quick),
        "2": lambda: pipeline.measure_latency(quick),
        "3": lambda: pipeline.measure_throughput(quick),
        "P": profiles,
        "4": lambda: inflight.measure(quick),
        "7": lambda: footprint.measure(quick),
        "8": lambda: storage.measure(quick),
        "9": lambda: routing.measure(quick),
    }


def notes_of(path: Path) -> str:
    if not path.exists():
        return "## Notes\n\n(none yet)\n"
    text = path.read_text()
    i = text.find("\n## Notes")
    return text[i + 1:] if i >= 0 else "## Notes\n\n(none yet)\n"


def write(out: Path, args, benches, results: dict, started: datetime) -> None:
    m = machine()
    command = "python3 bench/run_all" + (" --quick" if args.quick else "")
    lines = [
        "# Benchmarks",
        "",
        "Every figure is gengate beside a baseline measured in the same run on the same machine, as a median of "
        "3 runs unless the line says otherwise (`per run` lists them). These are benchmarks: nothing here runs in "
        "CI. Reproduce everything with one command on a clean clone (`python3 dev.py test` once first, to make "
        "`.venv`; `.venv/bin/pip install py-spy` for the profiles):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}, {sum(r['seconds'] for r in results.values()) / 60:.0f} min",
        f"- machine: {m['cores']} cores ({m['cpu']}), {m['memory']} memory, Python {m['python']}",
        f"- mode: {'QUICK (small sizes: a smoke run, not the recorded figures)' if args.quick else 'full sizes'}",
        "",
        "## Figures",
        "",
        HEADER,
    ]
    for key in benches:
        for f in (results.get(key) or {}).get("figures", []):
            lines.append(Figure(**f).row())
    lines.append("")
    for key in benches:
        if key not in results:
            continue
        lines += [f"### {key}. {TITLES[key]}", "", f"{results[key]['seconds']:.0f} s.", "", "```"]
        lines += results[key]["log"] or ["(no log)"]
        notes = [f"{f['name']}: {f['note']}" for f in results[key]["figures"] if f.get("note")]
        lines += notes
        lines += ["```", ""]
    lines.append(notes_of(out).rstrip() + "\n")
    out.write_text("\n".join(lines))
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "last.json").write_text(json.dumps({"started": started.isoformat(), "quick": args.quick,
                                                       "machine": m, "results": results}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", default="", help="comma-separated benchmarks: 1,2,3,4,5,6,7,8,P")
    ap.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    out = Path(args.output)
    wanted = [x.strip().upper() for x in args.only.split(",") if x.strip()]
    benches = _benches(args.quick)
    started = datetime.now(timezone.utc)
    results: dict[str, dict] = {}
    last = ROOT / "bench" / "results" / "last.json"
    if wanted and last.exists():  # a partial run replaces only its own benchmarks in the last run's report
        previous = json.loads(last.read_text())
        if previous.get("quick") == args.quick:
            results = {k: v for k, v in previous["results"].items() if k not in wanted}
            started = datetime.fromisoformat(previous["started"])
    for key, fn in benches.items():
        if wanted and key not in wanted:
            continue
        print(f"=== {key}: {TITLES[key]}", flush=True)
        t = time.monotonic()
        try:
            figs, log = fn()
            results[key] = {"figures": [f.as_dict() for f in figs], "log": log, "seconds": time.monotonic() - t}
        except Exception:
            tb = traceback.format_exc()
            print(tb, flush=True)
            results[key] = {"figures": [], "log": ["FAILED:", *tb.splitlines()], "seconds": time.monotonic() - t}
        write(out, args, benches, results, started)  # after each one: an interrupted run keeps what it measured
    write(out, args, benches, results, started)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
