"""The calibration report as the terminal shows it (`prefclean calibrate`)."""

from __future__ import annotations

from .calibration import MIN_PAIRS, VERDICTS


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _kappa(a: dict, r: dict | None = None) -> str:
    kappa = "-" if a.get("kappa") is None else f"{a['kappa']:.2f}"
    ci = a.get("kappa_ci95")
    if not ci:
        return kappa
    tail = f", {r['bootstrap_samples']} bootstrap samples, seed {r['seed']}" if r else ""
    return f"{kappa} (95% CI {ci[0]:.2f} to {ci[1]:.2f}{tail})"


def _setting(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "-" if v is None else f"{v:g}"


def _split(label: str, a: dict) -> str:
    small = " — too few to conclude" if a["pairs"] < MIN_PAIRS else ""
    return f"    {label}: {a['pairs']} pairs, agreement {_pct(a['agreement'])}, kappa {_kappa(a)}{small}"


def format_report(r: dict) -> list[str]:
    jh, hh = r["judge_vs_human"], r["human_vs_human"]
    if not r["reviewed_pairs"]:
        return ["Calibration: no submitted review yet in human.reviews (nothing to measure): run "
                "`prefclean pull argilla NAME` again once reviewers have submitted"]
    lines = [f"Calibration: {r['reviewed_pairs']} reviewed pairs, {jh['pairs']} with a judge verdict"
             + (f" ({r['not_judged']} not judged)" if r["not_judged"] else "")
             + (f"; {r['not_in_model']} reviewed pairs are not in the audit model (left out)"
                if r.get("not_in_model") else "")]
    if r.get("sample") == "calibration":
        lines.append(f"  sample: the random calibration sample only ({r.get('left_out_uncertain', 0)} reviewed pairs of "
                     "the uncertain queue left out: a sample picked for looking unsure is biased)")
    elif r.get("sample") == "all" and r.get("uncertain_only"):
        lines.append("  WARNING: no calibration sample: these reviews come from the uncertain queue, a biased "
                     "sample (export with `calibration: K` for one)")
    elif r.get("sample") == "all":
        lines.append("  sample: every reviewed pair (no calibration sample)")
    if r["too_small"]:
        lines.append(f"  WARNING: fewer than {MIN_PAIRS} reviewed pairs: too few to conclude anything; "
                     "the numbers below are only indicative")
    lines.append(f"  judge vs human: agreement {_pct(jh['agreement'])}, Cohen's kappa {_kappa(jh, r)}")
    lines.append("  confusion (rows: judge, columns: human): " + " ".join(f"{h:>8}" for h in VERDICTS))
    for j in VERDICTS:
        lines.append(f"    {j:<8}" + "".join(f" {jh['confusion'][j][h]:>8}" for h in VERDICTS))
    if r.get("per_judge"):
        lines.append("  per judge (each panel member's own verdict):")
        lines += [_split(name, a) for name, a in r["per_judge"].items()]
    if r.get("per_aspect"):
        lines.append("  per aspect:")
        lines += [_split(name, a) for name, a in r["per_aspect"].items()]
    elif len(r.get("aspects") or []) == 1:
        lines.append(f"  one aspect rated ({r['aspects'][0]}): no per-aspect split")
    if hh["pairs"]:
        hk = "-" if hh["kappa"] is None else f"{hh['kappa']:.2f}"
        lines.append(f"  human vs human: {hh['pairs']} pairs reviewed twice or more, agreement "
                     f"{_pct(hh['agreement'])}, kappa {hk} (the ceiling a judge can reach)")
    else:
        lines.append("  human vs human: no pair has two reviews yet")
    lines.append(f"  thresholds (per setting, the others as now: share of pairs kept, kept set's precision); "
                 f"suggested: {r.get('suggestion_rule', '')}")
    for name, s in r["thresholds"].items():
        cells = ", ".join(f"{_setting(x[name])}: keeps {_pct(x['share_kept'])} at precision {_pct(x['precision'])}"
                          for x in s["settings"])
        note = f" ({s['note']})" if s.get("note") else ""
        if "checked" in s and s.get("flipped"):
            note = f" ({s['flipped']} of {s['checked']} reviewed pairs judged swapped changed verdict)"
        lines.append(f"  {name} (now {_setting(s['current'])}; suggested {_setting(s['suggested'])}): {cells}{note}")
    if r["too_small"]:
        lines.append(f"  (suggestions from fewer than {MIN_PAIRS} pairs are not worth acting on)")
    return lines
