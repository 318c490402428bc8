"""How far to trust the judge: its verdicts measured against human reviews.

A verdict is which response of a pair is better: 'chosen', 'rejected' or 'tie' (a margin under min_margin).
For every reviewed pair this compares the judge panel's verdict with the human's (the latest submitted review,
as pair_decisions applies it): raw agreement, Cohen's kappa (agreement beyond what the two label frequencies
give by chance) with a seeded bootstrap confidence interval, and the confusion matrix. Pairs with two or more
reviews give human-vs-human agreement, the ceiling a judge can reach. For the thresholds min_margin and
poor_max it says, per setting, the share of pairs the judge would keep and the kept set's precision (the share
of kept pairs whose human verdict is 'chosen'), and suggests one.

With fewer than MIN_PAIRS reviewed pairs the numbers are printed but the report says they prove nothing.

Only an unbiased sample measures the judge: when any review belongs to the calibration sample (human.reviews
`queue` = 'calibration', drawn at random by `prefclean export` with the judge's suggestions hidden), only that
sample is compared; the uncertain queue's reviews (pairs picked because the judge looked unsure) are counted and
left out, as they would make the judge look worse than it is.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Iterable, Sequence

VERDICTS = ("chosen", "rejected", "tie")
MIN_PAIRS = 30  # below this a kappa's confidence interval spans most of its range
HUMAN_MIN_MARGIN = 1  # a human's ratings decide a verdict as pair_decisions applies them (min_margin=1)


def verdict(chosen: float | None, rejected: float | None, min_margin: float = 1) -> str | None:
    """As the `verdict` SQL macro: which response a margin favours, or None without both ratings."""
    if chosen is None or rejected is None:
        return None
    margin = chosen - rejected
    return "chosen" if margin >= min_margin else "rejected" if margin <= -min_margin else "tie"


def confusion(judge: Sequence[str], human: Sequence[str], labels: Sequence[str] = VERDICTS) -> dict[str, dict[str, int]]:
    """{judge verdict: {human verdict: pairs}} over every label pair (zeros included)."""
    counts = Counter(zip(judge, human))
    return {a: {b: counts.get((a, b), 0) for b in labels} for a in labels}


def cohen_kappa(a: Sequence[str], b: Sequence[str], labels: Sequence[str] = VERDICTS) -> float | None:
    """(p_observed - p_chance) / (1 - p_chance); None for no pairs, or when chance agreement is certain
    (both raters always gave the same single label: kappa is undefined)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    chance = sum(ca[label] * cb[label] for label in set(labels) | set(ca) | set(cb)) / (n * n)
    if chance >= 1:
        return None
    return (observed - chance) / (1 - chance)


def bootstrap_kappa(a: Sequence[str], b: Sequence[str], *, samples: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float] | None:
    """A percentile bootstrap interval for Cohen's kappa: resample the pairs with replacement `samples`
    times (seeded: the same inputs and seed give the same interval). Resamples where kappa is undefined are
    left out; None when fewer than two pairs or no resample has a kappa."""
    n = len(a)
    if n < 2:
        return None
    try:
        import numpy as np

        rng = np.random.default_rng(seed)
        draws = rng.integers(0, n, size=(samples, n)).tolist()
    except ImportError:  # numpy comes with pyarrow/datasets, but the module needs only the standard library
        rng_py = random.Random(seed)
        draws = [[rng_py.randrange(n) for _ in range(n)] for _ in range(samples)]
    kappas = sorted(k for k in (cohen_kappa([a[i] for i in idx], [b[i] for i in idx]) for idx in draws)
                    if k is not None)
    if not kappas:
        return None
    tail = (1 - level) / 2
    lo = kappas[int(tail * (len(kappas) - 1))]
    hi = kappas[int(round((1 - tail) * (len(kappas) - 1)))]
    return lo, hi


def agreement(judge: Sequence[str], human: Sequence[str], *, samples: int = 1000, seed: int = 0) -> dict:
    n = len(judge)
    kappa = cohen_kappa(judge, human)
    ci = bootstrap_kappa(judge, human, samples=samples, seed=seed)
    return {"pairs": n, "agreement": round(sum(x == y for x, y in zip(judge, human)) / n, 4) if n else None,
            "kappa": None if kappa is None else round(kappa, 4),
            "kappa_ci95": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
            "confusion": confusion(judge, human)}


def human_vs_human(reviews: dict[str, list[str]]) -> dict:
    """Over pairs with two or more reviews, the first two reviewers' verdicts (in review order)."""
    multi = [v for v in reviews.values() if len(v) >= 2]
    first, second = [v[0] for v in multi], [v[1] for v in multi]
    kappa = cohen_kappa(first, second)
    return {"pairs": len(multi),
            "agreement": round(sum(x == y for x, y in zip(first, second)) / len(multi), 4) if multi else None,
            "kappa": None if kappa is None else round(kappa, 4)}


def _kept(rows: Iterable[dict], min_margin: float, poor_max: float) -> list[dict]:
    """The pairs the judge's ratings would keep: its verdict is 'chosen' and not both responses poor."""
    return [r for r in rows if verdict(r["judge_chosen"], r["judge_rejected"], min_margin) == "chosen"
            and not (r["judge_chosen"] <= poor_max and r["judge_rejected"] <= poor_max)]


def _setting(rows: list[dict], min_margin: float, poor_max: float) -> dict:
    kept = _kept(rows, min_margin, poor_max)
    good = sum(r["human"] == "chosen" for r in kept)
    return {"kept": len(kept), "share_kept": round(len(kept) / len(rows), 4) if rows else None,
            "precision": round(good / len(kept), 4) if kept else None}


def sweep(rows: list[dict], name: str, values: Sequence[float], *, min_margin: float, poor_max: float) -> dict:
    """Per value of threshold `name` (the other at its current setting): share kept and precision, and a
    suggestion: the value keeping the most pairs among those within 0.05 of the best precision."""
    current = {"min_margin": min_margin, "poor_max": poor_max}
    settings = [{name: v, **_setting(rows, **{**current, name: v})} for v in values]
    scored = [s for s in settings if s["precision"] is not None]
    suggested = None
    if scored:
        best = max(s["precision"] for s in scored)
        suggested = max((s for s in scored if s["precision"] >= best - 0.05),
                        key=lambda s: (s["kept"], s["precision"], s[name] == current[name]))[name]
    return {"current": current[name], "settings": settings, "suggested": suggested}


def report(rows: list[dict], *, min_margin: float, poor_max: float, samples: int = 1000, seed: int = 0) -> dict:
    """rows: one per reviewed pair, {pair_id, judge_verdict, judge_chosen, judge_rejected, reviews: [(chosen,
    rejected) in review order, the latest last]}; pairs without a judge verdict are counted, not compared."""
    compared = []
    human_reviews: dict[str, list[str]] = {}
    unjudged = 0
    for r in rows:
        verdicts = [v for v in (verdict(c, x, HUMAN_MIN_MARGIN) for c, x in r["reviews"]) if v is not None]
        if not verdicts:
            continue
        human_reviews[r["pair_id"]] = verdicts
        if r["judge_verdict"] is None or r["judge_chosen"] is None or r["judge_rejected"] is None:
            unjudged += 1
            continue
        compared.append({**r, "human": verdicts[-1]})
    judge = [r["judge_verdict"] for r in compared]
    human = [r["human"] for r in compared]
    out = {"reviewed_pairs": len(human_reviews), "not_judged": unjudged,
           "judge_vs_human": agreement(judge, human, samples=samples, seed=seed),
           "human_vs_human": human_vs_human(human_reviews),
           "thresholds": {
               "min_margin": sweep(compared, "min_margin", [0.5, 1, 1.5, 2, 2.5, 3], min_margin=min_margin,
                                   poor_max=poor_max),
               "poor_max": sweep(compared, "poor_max", [0, 1, 2, 3, 4], min_margin=min_margin, poor_max=poor_max)},
           "seed": seed, "bootstrap_samples": samples}
    out["too_small"] = len(compared) < MIN_PAIRS
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def format_report(r: dict) -> list[str]:
    jh, hh = r["judge_vs_human"], r["human_vs_human"]
    ci = jh["kappa_ci95"]
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
    if r["too_small"]:
        lines.append(f"  WARNING: fewer than {MIN_PAIRS} reviewed pairs: too few to conclude anything; "
                     "the numbers below are only indicative")
    kappa = "-" if jh["kappa"] is None else f"{jh['kappa']:.2f}"
    lines.append(f"  judge vs human: agreement {_pct(jh['agreement'])}, Cohen's kappa {kappa}"
                 + (f" (95% CI {ci[0]:.2f} to {ci[1]:.2f}, {r['bootstrap_samples']} bootstrap samples, seed "
                    f"{r['seed']})" if ci else ""))
    lines.append("  confusion (rows: judge, columns: human): " + " ".join(f"{h:>8}" for h in VERDICTS))
    for j in VERDICTS:
        lines.append(f"    {j:<8}" + "".join(f" {jh['confusion'][j][h]:>8}" for h in VERDICTS))
    if hh["pairs"]:
        hk = "-" if hh["kappa"] is None else f"{hh['kappa']:.2f}"
        lines.append(f"  human vs human: {hh['pairs']} pairs reviewed twice or more, agreement "
                     f"{_pct(hh['agreement'])}, kappa {hk} (the ceiling a judge can reach)")
    else:
        lines.append("  human vs human: no pair has two reviews yet")
    for name, s in r["thresholds"].items():
        cells = ", ".join(f"{x[name]:g}: keeps {_pct(x['share_kept'])} at precision {_pct(x['precision'])}"
                          for x in s["settings"])
        suggested = "-" if s["suggested"] is None else f"{s['suggested']:g}"
        lines.append(f"  {name} (now {s['current']:g}; suggested {suggested}): {cells}")
    return lines


def review_sample(con) -> dict:
    """Which submitted reviews the report compares: {"sample": 'calibration' | 'all', "left_out_uncertain":
    reviewed pairs outside the calibration sample, "uncertain_only": every review is from the uncertain queue,
    "where": the SQL condition on human.reviews h}."""
    columns = {c for (c,) in con.execute("select column_name from information_schema.columns "
                                         "where table_schema = 'human' and table_name = 'reviews'").fetchall()}
    if "queue" not in columns:  # pulled before the review queue existed
        return {"sample": "all", "left_out_uncertain": 0, "uncertain_only": False, "where": "true"}
    calibration, other, uncertain = con.execute(
        "select count(distinct pair_id) filter (where queue = 'calibration'), "
        "count(distinct pair_id) filter (where queue is distinct from 'calibration'), "
        "count(distinct pair_id) filter (where queue = 'uncertain') "
        "from human.reviews where status = 'submitted'").fetchall()[0]
    if calibration:
        return {"sample": "calibration", "left_out_uncertain": other, "uncertain_only": False,
                "where": "h.queue = 'calibration'"}
    return {"sample": "all", "left_out_uncertain": 0, "uncertain_only": bool(uncertain) and uncertain == other,
            "where": "true"}


def read_rows(con, model: str = "pair_decisions", where: str = "true") -> list[dict]:
    """The audit model's judge verdict and panel ratings for every pair in human.reviews (those matching
    `where`, see review_sample), with its submitted reviews' ratings of chosen and rejected (mapped back
    through the pair's `order`), oldest first."""
    rows = con.execute(f"""
        select d.pair_id, d.majority_verdict, d.chosen_rating, d.rejected_rating,
               list([h.ratings[list_position(d."order", 'chosen')],
                     h.ratings[list_position(d."order", 'rejected')]] order by h.updated_at, h."user")
        from human.reviews h join {model} d using (pair_id)
        where h.status = 'submitted' and {where}
        group by all order by d.pair_id""").fetchall()
    return [{"pair_id": p, "judge_verdict": v, "judge_chosen": c, "judge_rejected": x,
             "reviews": [(a, b) for a, b in reviews]} for p, v, c, x, reviews in rows]


def unknown_pairs(con, model: str = "pair_decisions", where: str = "true") -> int:
    """Reviewed pairs the audit model no longer has (the dataset changed since the export): counted, not compared."""
    return con.execute(f"select count(distinct pair_id) from human.reviews h where status = 'submitted' "
                       f"and {where} and pair_id not in (select pair_id from {model})").fetchall()[0][0]
