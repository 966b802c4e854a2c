"""One measured figure beside its baseline, and the Markdown table rows run_all writes."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field


@dataclass
class Figure:
    bench: str  # "1 submission", ...
    name: str  # what was measured
    value: float
    unit: str
    baseline: str = ""  # what it is compared with
    baseline_value: float | None = None
    ratio: float | None = None  # value / baseline_value unless said otherwise
    goal: str = ""
    met: bool | None = None  # None: no goal on this line
    runs: list[float] = field(default_factory=list)  # the per-run values the median came from
    note: str = ""

    def row(self) -> str:
        base = f"{self.baseline}: {fmt(self.baseline_value)} {self.unit}" if self.baseline_value is not None else self.baseline
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        met = "" if self.met is None else ("**met**" if self.met else "**not met**")
        runs = ", ".join(fmt(r) for r in self.runs) if len(self.runs) > 1 else ""
        return (f"| {self.bench} | {self.name} | {fmt(self.value)} {self.unit} | {base} | {ratio} | {self.goal} | {met} | "
                f"{runs} |")

    def as_dict(self) -> dict:
        return asdict(self)


HEADER = ("| # | figure | gengate (median) | baseline (same run) | ratio | goal | met | per run |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")


def fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pct(values: list[float], q: float) -> float:
    """Quantile of seconds, in ms."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))] * 1000
