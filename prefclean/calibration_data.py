"""The calibration report's inputs, read from the warehouse: the reviews in human.reviews (`prefclean pull
argilla`), the audit model's panel verdict, ratings, agreement and position flips, and each panel member's
ratings from the ratings model (pair_ratings: one row per pair and judge, with the rated aspect).

`measure` is what `prefclean calibrate` and a build (its summary's `calibration` section) both call.
"""

from __future__ import annotations

from .calibration import report
from .errors import ProjectError
from .warehouse import model_relation, relation, relation_kind

RATINGS_MODEL = "pair_ratings"
REVIEW_COLUMNS = {"pair_id", "status", "ratings"}  # in human.reviews
NEEDED = {"pair_id", "order", "majority_verdict", "chosen_rating", "rejected_rating"}  # in the audit model
OPTIONAL = ("agreement", "position_flipped", "bias_checked", "failed")  # pair_decision's other inputs
NUMBERS = ("min_margin", "poor_max", "min_agreement")
SWITCHES = ("drop_position_biased", "allow_flip")


def _columns(con, schema: str, name: str) -> set[str]:
    return {c for (c,) in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "and table_catalog = current_database()", [schema, name]).fetchall()}


def review_sample(con) -> dict:
    """Which submitted reviews the report compares: {"sample": 'calibration' | 'all', "left_out_uncertain":
    reviewed pairs outside the calibration sample, "uncertain_only": every review is from the uncertain queue,
    "where": the SQL condition on human.reviews h}."""
    if "queue" not in _columns(con, "human", "reviews"):  # pulled before the review queue existed
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


def read_rows(con, where_model: tuple[str, str], where: str = "true") -> list[dict]:
    """The audit model's judge verdict, panel ratings (and agreement, position flip, failure where it has
    them) for every pair in human.reviews matching `where`, with its submitted reviews' ratings of chosen and
    rejected (mapped back through the pair's `order`), oldest first."""
    cols = _columns(con, *where_model)
    extra = [c for c in OPTIONAL if c in cols]
    review_cols = _columns(con, "human", "reviews")  # a table written by hand may lack who and when
    oldest_first = ", ".join(f"h.{c}" for c in ('updated_at', '"user"') if c.strip('"') in review_cols) or "h.pair_id"
    rows = con.execute(f"""
        select d.pair_id, d.majority_verdict, d.chosen_rating, d.rejected_rating,
               {''.join(f'any_value(d.{c}), ' for c in extra)}
               list([h.ratings[list_position(d."order", 'chosen')],
                     h.ratings[list_position(d."order", 'rejected')]] order by {oldest_first})
        from human.reviews h join {relation(*where_model)} d using (pair_id)
        where h.status = 'submitted' and {where}
        group by d.pair_id, d.majority_verdict, d.chosen_rating, d.rejected_rating order by d.pair_id""").fetchall()
    out = []
    for p, v, c, x, *rest in rows:
        out.append({"pair_id": p, "judge_verdict": v, "judge_chosen": c, "judge_rejected": x,
                    **dict(zip(extra, rest[:-1])), "reviews": [(a, b) for a, b in rest[-1]]})
    return out


def read_judges(con, ratings: tuple[str, str], pair_ids: list[str]) -> dict[str, list[dict]]:
    """pair_id -> each panel member's {judge, aspect, chosen, rejected} from the ratings model (empty when the
    project has none with pair_id, judge, chosen_rating and rejected_rating)."""
    cols = _columns(con, *ratings) if relation_kind(con, *ratings) else set()
    if not pair_ids or not {"pair_id", "judge", "chosen_rating", "rejected_rating"} <= cols:
        return {}
    aspect = "aspect" if "aspect" in cols else "null"
    out: dict[str, list[dict]] = {}
    for p, judge, asp, c, x in con.execute(
            f"select pair_id, judge, {aspect}, chosen_rating, rejected_rating from {relation(*ratings)} "
            f"where pair_id in (select unnest(?)) order by pair_id, judge", [pair_ids]).fetchall():
        out.setdefault(p, []).append({"judge": judge, "aspect": asp, "chosen": c, "rejected": x})
    return out


def unknown_pairs(con, where_model: tuple[str, str], where: str = "true") -> int:
    """Reviewed pairs the audit model no longer has (the dataset changed since the export): counted, not compared."""
    return con.execute(f"select count(distinct pair_id) from human.reviews h where status = 'submitted' "
                       f"and {where} and pair_id not in (select pair_id from {relation(*where_model)})").fetchall()[0][0]


def settings_from_vars(vars: dict) -> dict:
    """The project's decision thresholds, checked: a number where one is needed, true/false for switches."""
    defaults = {"min_agreement": 1.0, "drop_position_biased": True, "allow_flip": False}
    out = {}
    for name in NUMBERS + SWITCHES:
        value = vars.get(name, defaults.get(name))
        wrong = (not isinstance(value, bool)) if name in SWITCHES else (
            isinstance(value, bool) or not isinstance(value, (int, float)))
        if wrong:
            kind = "true or false" if name in SWITCHES else "a number"
            raise ProjectError(f"var '{name}' is {value!r}; calibrate needs {kind} (prefclean.yml `vars:` or --vars)")
        out[name] = value
    return out


def has_reviews(con) -> bool:
    return relation_kind(con, "human", "reviews") is not None


def measure(con, vars: dict, *, model: str = "pair_decisions", ratings_model: str = RATINGS_MODEL,
            seed: int = 0, samples: int = 1000) -> dict:
    """The calibration report on what the warehouse holds now (see calibration.report), with the sample it
    used (`sample`: calibration or all) and the reviewed pairs the audit model does not have (`not_in_model`)."""
    where_model = model_relation(con, model)  # (its `schema` / `alias` config may move it from main)
    if relation_kind(con, *where_model) is None:
        raise ProjectError(f"no model '{model}' in the warehouse: run `prefclean build` first")
    if not has_reviews(con):
        raise ProjectError("no human reviews in the warehouse (table human.reviews): "
                           "run `prefclean pull argilla NAME` first")
    missing = NEEDED - _columns(con, *where_model)
    if missing:
        raise ProjectError(f"model '{model}' has no column {', '.join(sorted(missing))}: calibrate needs the "
                           f"audit model's {', '.join(sorted(NEEDED))}")
    lacking = REVIEW_COLUMNS - _columns(con, "human", "reviews")
    if lacking:
        raise ProjectError(f"table human.reviews has no column {', '.join(sorted(lacking))}: pull the reviews "
                           "again with `prefclean pull argilla NAME`")
    settings = settings_from_vars(vars)
    sample = review_sample(con)  # the calibration sample when there is one
    rows = read_rows(con, where_model, sample["where"])
    judges = read_judges(con, model_relation(con, ratings_model), [r["pair_id"] for r in rows])
    for r in rows:
        r["judges"] = judges.get(r["pair_id"], [])
    out = report(rows, samples=samples, seed=seed, **settings)
    return {**out, "not_in_model": unknown_pairs(con, where_model, sample["where"]),
            **{k: v for k, v in sample.items() if k != "where"}}


def summary_section(con, vars: dict, model: str) -> dict | None:
    """The build summary's `calibration` section: the report when reviews were pulled and the audit model has
    what it needs, else None (a project without reviews has nothing to calibrate)."""
    if not has_reviews(con) or REVIEW_COLUMNS - _columns(con, "human", "reviews"):
        return None
    where_model = model_relation(con, model)
    if relation_kind(con, *where_model) is None or NEEDED - _columns(con, *where_model):
        return None
    return measure(con, vars, model=model)
