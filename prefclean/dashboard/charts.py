"""Bar charts as plain geometry that a Jinja macro draws as SVG.

Charts are drawn on the server: no chart script to ship or trust, pages work with scripts off, and every
label goes through Jinja's autoescaping like the rest of the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 12, 26


@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    value: float
    tooltip: str
    series: int


@dataclass
class Chart:
    title: str
    bars: list[Bar] = field(default_factory=list)
    xlabels: list[tuple[float, str]] = field(default_factory=list)
    yticks: list[tuple[float, str]] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)
    empty: bool = False
    width: int = WIDTH
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM


def _ticks(value: float) -> list[float]:
    """Round tick values from 0 past `value`: steps of 1, 2 or 5 times a power of ten, at most 5 of them."""
    if value <= 0:
        return [0.0, 1.0]
    step = next(m * 10 ** e for e in range(math.floor(math.log10(value / 4)), 99) for m in (1, 2, 5)
                if m * 10 ** e >= value / 4)
    return [i * step for i in range(math.ceil(value / step - 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:g}"


def bar_chart(title: str, categories: list[str], series: dict[str, list[float | None]]) -> Chart:
    """Grouped bars: one group per category, one bar per series (missing values are drawn as 0)."""
    chart = Chart(title, legend=list(series) if len(series) > 1 else [])
    values = [v or 0 for vs in series.values() for v in vs]
    if not categories or not values or max(values) <= 0:
        chart.empty = True
        return chart
    ticks = _ticks(max(values))
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / len(categories)
    bar_w = max(1.0, group_w * 0.8 / len(series))
    for ci, cat in enumerate(categories):
        x0 = LEFT + ci * group_w + group_w * 0.1
        for si, (name, vs) in enumerate(series.items()):
            v = (vs[ci] if ci < len(vs) else 0) or 0
            h = plot_h * v / top
            label = f"{cat}: {_fmt(v)}" + (f" ({name})" if len(series) > 1 else "")
            chart.bars.append(Bar(round(x0 + si * bar_w, 1), round(TOP + plot_h - h, 1), round(bar_w - 1, 1),
                                  round(h, 1), v, label, si))
        step = max(1, len(categories) // 14)  # keep x labels readable on wide histograms
        if ci % step == 0:
            room = max(3, int(group_w * step / 6.5))  # ~6.5 px per character at the tick font size
            label = cat if len(cat) <= room else cat[:room - 1] + "…"
            chart.xlabels.append((round(LEFT + ci * group_w + group_w / 2, 1), label))
    chart.yticks = [(round(TOP + plot_h - plot_h * t / top, 1), _fmt(t)) for t in ticks]
    return chart


def charts_for(data: dict) -> list[Chart]:
    """The charts page: what `queries.chart_data` found, as charts (a section is skipped when its data is absent)."""
    out = []
    judges = sorted({row["judge"] for row in data.get("ratings", [])})
    for judge in judges or [None]:
        rows = {row["rating"]: row for row in data.get("ratings", []) if row["judge"] == judge}
        levels = [1, 2, 3, 4, 5]
        title = "Ratings: chosen vs rejected" + (f" — judge {judge}" if judge and len(judges) > 1 else "")
        out.append(bar_chart(title, [str(v) for v in levels], {
            "chosen": [rows.get(v, {}).get("chosen", 0) for v in levels],
            "rejected": [rows.get(v, {}).get("rejected", 0) for v in levels]}))
    if data.get("margins"):  # every half-point bin from the lowest to the highest, empty ones included
        counts = {m["bin"]: m["n"] for m in data["margins"]}
        low, high = int(min(counts) * 2), int(max(counts) * 2)
        bins = [b / 2 for b in range(low, high + 1)]
        out.append(bar_chart("Margin (chosen − rejected, panel average)", [f"{b:+g}" for b in bins],
                             {"pairs": [counts.get(b, 0) for b in bins]}))
    out.append(bar_chart("Decisions by reason", [f"{d['reason']} ({d['decision']})" for d in data["decisions"]],
                         {"pairs": [d["n"] for d in data["decisions"]]}))
    if data.get("bias"):
        names = [b["judge"] for b in data["bias"]]
        out.append(bar_chart("Position bias: verdict after swapping the responses", names, {
            "same verdict": [b["same"] for b in data["bias"]], "verdict changed": [b["changed"] for b in data["bias"]],
            "unreadable": [b["unreadable"] for b in data["bias"]]}))
    if len(data.get("by_judge") or []) > 1:
        names = [j["judge"] for j in data["by_judge"]]
        out.append(bar_chart("Mean rating by judge (panel)", names, {
            "chosen": [j["chosen"] for j in data["by_judge"]], "rejected": [j["rejected"] for j in data["by_judge"]]}))
    return out
