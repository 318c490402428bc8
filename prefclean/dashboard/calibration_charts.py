"""The calibration page's plots as plain geometry that templates/calibration.html draws as SVG.

Three pictures of the report prefclean calibrate writes into summary.json: for each threshold, the kept set's
precision against the share of pairs kept (one point per setting, the current and suggested ones marked); kappa
with its bootstrap interval for the panel and each judge (the humans' own agreement as the ceiling); and the
confusion matrix as a table whose cells are shaded by count (classes heat0..heat5, no inline style: the page's
CSP allows only the stylesheet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

W, H = 420, 260
LEFT, RIGHT, TOP, BOTTOM = 46, 14, 12, 34
HEAT_LEVELS = 5


@dataclass
class Point:
    x: float
    y: float
    label: str
    tooltip: str
    kind: str  # "" | "current" | "suggested" | "current suggested"


@dataclass
class Curve:
    name: str
    points: list[Point] = field(default_factory=list)
    path: str = ""
    ticks: list[tuple[float, str]] = field(default_factory=list)  # shared by both axes: 0%..100%
    note: str = ""
    width: int = W
    height: int = H

    @property
    def empty(self) -> bool:
        return not self.points


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else f"{v:g}"


def curve(name: str, sweep: dict) -> Curve:
    """Precision (y) against the share kept (x), both 0..1, a point per setting that keeps anything."""
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    c = Curve(name, note=sweep.get("note", ""))
    c.ticks = [(t, _pct(t)) for t in (0, 0.25, 0.5, 0.75, 1)]
    for s in sweep["settings"]:
        if s["precision"] is None or s["share_kept"] is None:
            continue
        kind = " ".join(k for k, on in (("current", s[name] == sweep["current"]),
                                       ("suggested", s[name] == sweep.get("suggested"))) if on)
        c.points.append(Point(round(LEFT + plot_w * s["share_kept"], 1), round(TOP + plot_h * (1 - s["precision"]), 1),
                              value(s[name]), f"{name} {value(s[name])}: keeps {_pct(s['share_kept'])} "
                              f"({s['kept']} pairs) at precision {_pct(s['precision'])}"
                              + (f" [{kind}]" if kind else ""), kind))
    c.points = _merged(c.points)
    ordered = sorted(c.points, key=lambda p: (p.x, -p.y))
    c.path = " ".join(f"{'M' if i == 0 else 'L'}{p.x},{p.y}" for i, p in enumerate(ordered))
    return c


def _merged(points: list[Point]) -> list[Point]:
    """Settings that keep the same pairs land on one spot: one point, labelled with all their values."""
    spots: dict[tuple[float, float], list[Point]] = {}
    for p in points:
        spots.setdefault((p.x, p.y), []).append(p)
    out = []
    for (x, y), same in spots.items():
        labels = [p.label for p in same]
        kinds = sorted({k for p in same for k in p.kind.split()})
        out.append(Point(x, y, labels[0] if len(labels) == 1 else f"{labels[0]}–{labels[-1]}",
                         "\n".join(p.tooltip for p in same), " ".join(kinds)))
    return out


@dataclass
class KappaRow:
    label: str
    y: float
    x: float | None  # the kappa, None when undefined
    lo: float | None
    hi: float | None
    tooltip: str


@dataclass
class KappaPlot:
    rows: list[KappaRow]
    ticks: list[tuple[float, str]]
    ceiling: float | None  # x of the humans' own kappa
    ceiling_label: str
    width: int
    height: int
    left: int = 120
    right: int = 14


def _kx(k: float, left: int, width: int, right: int) -> float:
    return round(left + (width - left - right) * (k + 1) / 2, 1)  # kappa -1..1


def kappa_plot(report: dict) -> KappaPlot:
    """One row for the panel and one per judge: kappa as a dot, its 95% interval as a bar."""
    width, left, right = 520, 120, 14
    splits = [("panel", report["judge_vs_human"])] + [(f"judge {n}", a) for n, a in report.get("per_judge", {}).items()]
    splits += [(f"aspect {n}", a) for n, a in report.get("per_aspect", {}).items()]
    rows = []
    for i, (label, a) in enumerate(splits):
        ci = a.get("kappa_ci95")
        k = a.get("kappa")
        rows.append(KappaRow(label, 20 + 26 * i, None if k is None else _kx(k, left, width, right),
                             _kx(ci[0], left, width, right) if ci else None,
                             _kx(ci[1], left, width, right) if ci else None,
                             f"{label}: kappa {'-' if k is None else f'{k:.2f}'}"
                             + (f", 95% CI {ci[0]:.2f} to {ci[1]:.2f}" if ci else "") + f" on {a['pairs']} pairs"))
    hh = report.get("human_vs_human") or {}
    ceiling = hh.get("kappa")
    height = 20 + 26 * len(rows) + 24
    return KappaPlot(rows, [(_kx(t, left, width, right), f"{t:g}") for t in (-1, -0.5, 0, 0.5, 1)],
                     None if ceiling is None else _kx(ceiling, left, width, right),
                     "" if ceiling is None else f"humans: {ceiling:.2f}", width, height, left, right)


def heat(confusion: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Each cell's shade 0..HEAT_LEVELS, by its share of the largest cell (0 only for an empty cell)."""
    top = max((n for row in confusion.values() for n in row.values()), default=0)
    return {j: {h: (0 if not n or not top else max(1, round(HEAT_LEVELS * n / top))) for h, n in row.items()}
            for j, row in confusion.items()}
