"""Which pairs go to human reviewers, and in which queue (`review:`, `budget:`, `calibration:` of an argilla
export; `prefclean export NAME --review uncertain --budget N --calibration K`).

Two queues, for two uses of a person's time:

* **calibration** — K pairs drawn at random, to measure the judge (prefclean calibrate compares only these).
  The draw never looks at the judge's ratings: each pair's place is md5(seed:pair_id), so the same seed gives
  the same sample on every rebuild and re-export, and a larger K keeps the earlier pairs. It is stratified by the
  judge's decision (keep / flip / drop) with proportional allocation, so the sample has the dataset's mix and its
  plain agreement needs no reweighting. Its records carry no judge suggestions or judge metadata: nothing to
  anchor the reviewer.
* **uncertain** — the `budget` pairs where a reviewer changes the most, by a score of four signals, each 0 to 1:

      uncertainty = position_flipped                      the verdict changed when the responses were swapped
                  + min(1, 2 * (1 - agreement))           the panel split (one judge: 0; 1 of 2 against: 1)
                  + max(0, 1 - |margin| / (2 * min_margin))  a small margin (0: 1; at min_margin: 0.5)
                  + (rejected rated above chosen)         judge_prefers_rejected: the label may be wrong

  ties broken by the smaller |margin|, then by the same md5 place. Records show the judge's suggestions.

Only pairs the judge rated are queued (nothing to measure or doubt otherwise). A pair already in the Argilla
dataset is never sent again in review: uncertain, so re-exporting after reviews adds the next pairs instead of
resending; the calibration sample counts the calibration records already there toward K.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from ..errors import ExportError

QUEUES = ["all", "uncertain", "calibration"]
# The stratum of the calibration draw: the judge's own decision when the audit model keeps it apart from a
# human override (pair_decisions.judge_decision), else the decision.
STRATUM_COLUMNS = ("judge_decision", "decision")


@dataclass(frozen=True)
class QueuePlan:
    review: str = "all"
    budget: int | None = None
    calibration: int = 0
    seed: int = 0
    min_margin: float = 1.0


@dataclass
class QueuePick:
    """pair_id -> (queue, uncertainty) of the pairs to send, and the counts the export line reports."""

    picked: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    calibration_new: int = 0
    calibration_there: int = 0  # calibration records already in the dataset
    calibration_shown: int = 0  # drawn for calibration but already sent with suggestions: left as they were
    uncertain_new: int = 0
    already_sent: int = 0  # review: uncertain: pairs in the dataset, not sent again
    not_judged: int = 0

    def table(self) -> pa.Table:
        ids = list(self.picked)
        return pa.table({"pair_id": pa.array(ids, pa.string()),
                         "queue": pa.array([self.picked[i][0] for i in ids], pa.string()),
                         "uncertainty": pa.array([self.picked[i][1] for i in ids], pa.float64())})


def allocate(sizes: dict[str, int], k: int) -> dict[str, int]:
    """Proportional allocation of k draws over strata of these sizes, one draw at a time to the stratum furthest
    below its share: a larger k never takes a draw away from a stratum (the sample only grows)."""
    total = sum(sizes.values())
    taken = {s: 0 for s in sizes}
    for step in range(1, min(k, total) + 1):
        open_ = [s for s in sorted(sizes) if taken[s] < sizes[s]]
        best = max(open_, key=lambda s: (sizes[s] * step / total - taken[s], sizes[s]))
        taken[best] += 1
    return taken


def pick(con, rel: str, plan: QueuePlan, existing: dict[str, str | None]) -> QueuePick:
    """The pairs of model `rel` to send under `plan`; `existing`: pair_id -> queue of the records already in
    the dataset."""
    if plan.review == "all" and not plan.calibration:  # every pair; a calibration record stays one
        ids = [pid for (pid,) in con.execute(f"select pair_id::varchar from {rel}").fetchall()]
        return QueuePick(picked={pid: ("calibration" if existing.get(pid) == "calibration" else "all", None)
                                 for pid in ids})
    columns = set(con.sql(f"select * from {rel} limit 0").columns)
    missing = [c for c in ("pair_id", "chosen_rating", "rejected_rating") if c not in columns]
    if missing:
        raise ExportError(f"the review queue needs column '{missing[0]}' in the model (the judge's panel ratings)")
    stratum = next((c for c in STRATUM_COLUMNS if c in columns), None)
    flipped = "coalesce(position_flipped, false)::integer" if "position_flipped" in columns else "0"
    split = "least(1, 2 * (1 - coalesce(agreement, 1)))" if "agreement" in columns else "0"
    scale = 2 * max(float(plan.min_margin), 0.5)
    con.execute("create or replace temp table review_candidates as "
                f"select pair_id::varchar as pair_id, {stratum or 'null'}::varchar as stratum, "
                f"md5(? || ':' || pair_id::varchar) as place, abs(chosen_rating - rejected_rating) as gap, "
                f"({flipped} + {split} + greatest(0, 1 - abs(chosen_rating - rejected_rating) / {scale}) "
                f"+ (rejected_rating > chosen_rating)::integer)::double as uncertainty, "
                f"(chosen_rating is not null and rejected_rating is not null) as judged from {rel}",
                [str(plan.seed)])
    try:
        return _pick(con, plan, existing)
    finally:
        con.execute("drop table if exists review_candidates")


def _pick(con, plan: QueuePlan, existing: dict[str, str | None]) -> QueuePick:
    out = QueuePick()
    out.not_judged = con.execute("select count(*) from review_candidates where not judged").fetchall()[0][0]
    drawn = _calibration_draw(con, plan.calibration)
    out.calibration_there = sum(1 for q in existing.values() if q == "calibration")
    room = max(0, plan.calibration - out.calibration_there)
    for pid in drawn:
        if pid in existing:
            out.calibration_shown += existing[pid] != "calibration"
        elif room:
            out.picked[pid] = ("calibration", None)
            out.calibration_new += 1
            room -= 1
    drawn_set = set(drawn)
    if plan.review == "uncertain":
        out.already_sent = len(existing)
        enough = (plan.budget or 0) + len(existing) + len(drawn_set)  # what the budget can need, skips included
        ranked = con.execute("select pair_id, uncertainty from review_candidates where judged "
                             "order by uncertainty desc, gap, place limit ?", [enough]).fetchall()
        for pid, score in ranked:
            if out.uncertain_new >= (plan.budget or 0):
                break
            if pid in existing or pid in drawn_set:
                continue
            out.picked[pid] = ("uncertain", round(score, 4))
            out.uncertain_new += 1
        return out
    for (pid,) in con.execute("select pair_id from review_candidates order by pair_id").fetchall():
        if pid in out.picked:
            continue
        # a calibration record stays one: updating it must not add the judge's suggestions
        out.picked[pid] = ("calibration" if existing.get(pid) == "calibration" else "all", None)
    return out


def _calibration_draw(con, k: int) -> list[str]:
    """The calibration sample of size k (before leaving out what the dataset already has), in draw order."""
    if k <= 0:
        return []
    sizes = dict(con.execute("select coalesce(stratum, ''), count(*) from review_candidates where judged "
                             "group by all").fetchall())
    quota = allocate(sizes, k)
    ranked = con.execute("select pair_id, coalesce(stratum, ''), row_number() over "
                         "(partition by coalesce(stratum, '') order by place) from review_candidates where judged "
                         "order by place").fetchall()
    return [pid for pid, s, rank in ranked if rank <= quota.get(s, 0)]
