"""How far to trust the judge: its verdicts measured against human reviews.

A verdict is which response of a pair is better: 'chosen', 'rejected' or 'tie' (a margin under min_margin).
For every reviewed pair this compares the judge panel's verdict with the human's (the latest submitted review,
as pair_decisions applies it): raw agreement, Cohen's kappa (agreement beyond what the two label frequencies
give by chance) with a seeded bootstrap confidence interval, and the confusion matrix — for the panel, for each
panel member (its own verdict from its own ratings) and, when several aspects are rated, for each aspect. Pairs
with two or more reviews give human-vs-human agreement, the ceiling a judge can reach. calibration_sweeps.py
says what each threshold setting would keep and how precisely; calibration_data.py reads the warehouse;
calibration_format.py prints the report.

With fewer than MIN_PAIRS reviewed pairs the numbers are printed but the report says they prove nothing.

Only an unbiased sample measures the judge: when any review belongs to the calibration sample (human.reviews
`queue` = 'calibration', drawn at random by `prefclean export` with the judge's suggestions hidden), only that
sample is compared; the uncertain queue's reviews (pairs picked because the judge looked unsure) are counted and
left out, as they would make the judge look worse than it is.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Sequence

from .calibration_sweeps import SUGGESTION_RULE, Settings, sweeps

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



def _by(compared: list[dict], key: str, min_margin: float, *, samples: int, seed: int) -> dict[str, dict]:
    """Agreement of each panel member (key 'judge') or aspect (key 'aspect') with the humans, on the pairs it
    rated: a member's own verdict from its ratings; an aspect's from its members' mean ratings."""
    ratings: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in compared:
        for j in r.get("judges") or []:
            if j["chosen"] is not None and j["rejected"] is not None and j.get(key) is not None:
                ratings.setdefault(j[key], {}).setdefault(r["pair_id"], []).append((j["chosen"], j["rejected"]))
    human = {r["pair_id"]: r["human"] for r in compared}
    out = {}
    for name in sorted(ratings):
        pairs = sorted(ratings[name])
        judge = [verdict(sum(c for c, _ in ratings[name][p]) / len(ratings[name][p]),
                         sum(x for _, x in ratings[name][p]) / len(ratings[name][p]), min_margin) for p in pairs]
        out[name] = agreement(judge, [human[p] for p in pairs], samples=samples, seed=seed)
    return out


def report(rows: list[dict], *, min_margin: float, poor_max: float, min_agreement: float = 1.0,
           drop_position_biased: bool = True, allow_flip: bool = False, samples: int = 1000, seed: int = 0) -> dict:
    """rows: one per reviewed pair, {pair_id, judge_verdict (the panel's), judge_chosen, judge_rejected (its
    mean ratings), [agreement, position_flipped, bias_checked, failed], [judges: [{judge, aspect, chosen,
    rejected}] per panel member], reviews: [(chosen, rejected) in review order, the latest last]}; pairs
    without a judge verdict are counted, not compared."""
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
    settings = Settings(min_margin, poor_max, min_agreement, drop_position_biased, allow_flip)
    aspects = sorted({j["aspect"] for r in compared for j in r.get("judges") or [] if j.get("aspect")})
    per_aspect = _by(compared, "aspect", min_margin, samples=samples, seed=seed) if len(aspects) > 1 else {}
    return {"reviewed_pairs": len(human_reviews), "not_judged": unjudged,
            "judge_vs_human": agreement([r["judge_verdict"] for r in compared], [r["human"] for r in compared],
                                        samples=samples, seed=seed),
            "per_judge": _by(compared, "judge", min_margin, samples=samples, seed=seed),
            "aspects": aspects, "per_aspect": per_aspect,
            "human_vs_human": human_vs_human(human_reviews),
            "thresholds": sweeps(compared, settings), "suggestion_rule": SUGGESTION_RULE,
            "seed": seed, "bootstrap_samples": samples, "min_pairs": MIN_PAIRS,
            "too_small": len(compared) < MIN_PAIRS}
