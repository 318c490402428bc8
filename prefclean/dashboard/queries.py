"""Everything the dashboard reads from the warehouse, through a read-only, locked-down connection.

Each request opens its own connection (`prefclean.readonly.open_readonly`) and closes it, so the dashboard
never holds DuckDB's file lock while `prefclean build` wants to write, and always shows the latest build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from ..errors import PrefcleanError
from ..readonly import open_readonly
from ..summary import compute_summary
from ..warehouse import MODELS_SCHEMA, model_relations, relation

# The dashboard's DuckDB may use this much memory and temp disk, so one SQL-box query (a temp table, a huge
# sort) cannot take the machine's; every connection the dashboard opens carries them (DuckDB requires it).
DUCKDB_LIMITS = {"memory_limit": "4GB", "max_temp_directory_size": "4GB"}
RATINGS_MODEL = "pair_ratings"
PAGE_SIZE = 50
SNIPPET = 140
PAIR_COLUMNS = ("pair_id", "instruction", "chosen", "rejected", "decision", "reason", "chosen_rating", "rejected_rating")


class Unavailable(PrefcleanError):
    """The warehouse cannot be read right now (a build holds its lock)."""


class Missing(Unavailable):
    """A table the page needs is not in the warehouse yet (before the first build)."""


class Reader:
    """A read-only connection with the few helpers every page needs."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        stands = {(r[0], r[1]) for r in con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = current_database()"
        ).fetchall()}
        # model -> (schema, identifier): main.NAME, or where its `schema` / `alias` config built it
        self._where = {name: (schema, name) for schema, name in stands if schema == MODELS_SCHEMA}
        self._where.update({m: where for m, where in model_relations(con).items() if where in stands})
        self._tables = set(self._where)

    @classmethod
    def open(cls, warehouse) -> "Reader":
        if not warehouse.exists():
            raise Missing(f"no warehouse at {warehouse}")
        try:
            return cls(open_readonly(warehouse, limits=DUCKDB_LIMITS))
        except PrefcleanError as exc:  # most likely `prefclean build` is writing it
            raise Unavailable(str(exc)) from None

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def has(self, name: str) -> bool:
        return name in self._tables

    def need(self, name: str) -> str:
        if name not in self._tables:
            raise Missing(f"the model '{name}' is not in the warehouse")
        return relation(*self._where[name])

    def columns(self, name: str) -> set[str]:
        return {r[0] for r in self.con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "and table_catalog = current_database()", list(self._where.get(name, (MODELS_SCHEMA, name)))).fetchall()}

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        cur = self.con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


# ---- overview -------------------------------------------------------------------------------------------

def overview(r: Reader, audit: str) -> dict:
    r.need(audit)
    out = {"summary": compute_summary(r.con, audit)}
    if r.has(RATINGS_MODEL):
        out["judges"] = r.rows(f"""
            select judge, any_value(judge_model) as model, count(*) as pairs,
                   count(*) filter (where error is not null or swapped_error is not null) as failures,
                   count(*) filter (where cached) as cached,
                   sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
                   round(avg(latency_ms)) as avg_latency_ms, round(sum(latency_ms) / 1000, 1) as judge_seconds
            from {r.need(RATINGS_MODEL)} group by judge order by judge""")
    return out


# ---- charts ---------------------------------------------------------------------------------------------

def chart_data(r: Reader, audit: str) -> dict:
    rel = r.need(audit)
    cols = r.columns(audit)
    data: dict = {"decisions": r.rows(
        f"select decision, reason, count(*) as n from {rel} group by all order by 1, 3 desc")}
    if "margin" in cols:
        data["margins"] = r.rows(f"select round(margin * 2) / 2 as bin, count(*) as n from {rel} "
                                 f"where margin is not null group by 1 order by 1")
    if r.has(RATINGS_MODEL):
        ratings = r.need(RATINGS_MODEL)
        data["ratings"] = r.rows(f"""
            select judge, rating, count(*) filter (where side = 'chosen') as chosen,
                   count(*) filter (where side = 'rejected') as rejected
            from (select judge, chosen_rating as rating, 'chosen' as side from {ratings}
                  union all select judge, rejected_rating, 'rejected' from {ratings})
            where rating is not null group by all order by 1, 2""")
        data["by_judge"] = r.rows(f"""
            select judge, avg(chosen_rating) as chosen, avg(rejected_rating) as rejected,
                   avg(chosen_rating - rejected_rating) as margin
            from {ratings} group by 1 order by 1""")
        # position bias: did the verdict (sign of chosen - rejected) survive swapping the two responses?
        data["bias"] = r.rows(f"""
            select judge,
                   count(*) filter (where bias_checked and v = vs) as same,
                   count(*) filter (where bias_checked and v <> vs) as changed,
                   count(*) filter (where bias_checked and (v is null or vs is null)) as unreadable,
                   count(*) filter (where not bias_checked) as not_checked
            from (select judge, bias_checked, sign(chosen_rating - rejected_rating) as v,
                         sign(chosen_rating_swapped - rejected_rating_swapped) as vs from {ratings})
            group by 1 order by 1""")
    else:  # no per-judge table: fall back to the panel's averages in the audit model
        data["ratings"] = r.rows(f"""
            select 'panel' as judge, rating, count(*) filter (where side = 'chosen') as chosen,
                   count(*) filter (where side = 'rejected') as rejected
            from (select round(chosen_rating) as rating, 'chosen' as side from {rel}
                  union all select round(rejected_rating), 'rejected' from {rel})
            where rating is not null group by all order by 1, 2""")
    return data


# ---- the pairs table ------------------------------------------------------------------------------------

@dataclass
class PairFilter:
    decision: str = ""
    reason: str = ""
    judge: str = ""
    q: str = ""
    chosen_min: float | None = None
    chosen_max: float | None = None
    rejected_min: float | None = None
    rejected_max: float | None = None
    margin_min: float | None = None
    margin_max: float | None = None
    failed: bool = False
    biased: bool = False

    RANGES = ("chosen_min", "chosen_max", "rejected_min", "rejected_max", "margin_min", "margin_max")

    @classmethod
    def from_query(cls, query) -> "PairFilter":
        f = cls(decision=query.get("decision", ""), reason=query.get("reason", ""), judge=query.get("judge", ""),
                q=query.get("q", "").strip(), failed=query.get("failed") == "1", biased=query.get("biased") == "1")
        for name in cls.RANGES:
            raw = (query.get(name) or "").strip()
            if raw:
                try:
                    setattr(f, name, float(raw))
                except ValueError:
                    raise PrefcleanError(f"filter {name}: '{raw}' is not a number") from None
        return f


@dataclass
class Page:
    rows: list[dict]
    total: int
    after: str | None = None  # cursor for the next page
    before: str | None = None  # cursor for the previous page
    judges: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _where(f: PairFilter, cols: set[str], rating_alias: str) -> tuple[list[str], list]:
    clauses, params = [], []
    if f.decision:
        clauses.append("d.decision = ?")
        params.append(f.decision)
    if f.reason:
        clauses.append("d.reason = ?")
        params.append(f.reason)
    bounds = {"chosen": f"{rating_alias}.chosen_rating", "rejected": f"{rating_alias}.rejected_rating",
              "margin": f"({rating_alias}.chosen_rating - {rating_alias}.rejected_rating)"}
    for name in PairFilter.RANGES:
        value = getattr(f, name)
        if value is not None:
            what, end = name.split("_")
            clauses.append(f"{bounds[what]} {'>=' if end == 'min' else '<='} ?")
            params.append(value)
    if f.failed and "failed" in cols:
        clauses.append("d.failed")
    if f.biased and "position_flipped" in cols:
        clauses.append("d.position_flipped")
    if f.q:
        special = any(ch in f.q for ch in "\\%_")  # escape only when needed: ESCAPE makes the scan slower
        pattern = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        like = "ilike ? escape '\\'" if special else "ilike ?"
        clauses.append(f"(d.instruction {like} or d.chosen {like} or d.rejected {like} or d.pair_id = ?)")
        params += [pattern if special else f"%{f.q}%"] * 3 + [f.q]
    return clauses, params


def pairs_page(r: Reader, audit: str, f: PairFilter, *, after: str | None = None, before: str | None = None,
               limit: int = PAGE_SIZE) -> Page:
    """Keyset paging on pair_id (no OFFSET: a deep page costs what the first does).

    The filter runs once, over narrow columns; only the page's rows are then read in full."""
    rel = r.need(audit)
    cols = r.columns(audit)
    lacking = [c for c in PAIR_COLUMNS if c not in cols]
    if lacking:
        raise Missing(f"the audit model '{audit}' has no column {', '.join(lacking)} (the pairs table needs "
                      f"{', '.join(PAIR_COLUMNS)})")
    by_judge = bool(f.judge) and r.has(RATINGS_MODEL)
    source = f"{rel} d"
    join_params = [f.judge] if by_judge else []
    if by_judge:  # ratings are that judge's, not the panel's average
        source += f" join {r.need(RATINGS_MODEL)} j on j.pair_id = d.pair_id and j.judge = ?"
    clauses, params = _where(f, cols, "j" if by_judge else "d")
    params = join_params + params
    where = " and ".join(clauses) or "true"
    cursor = ""
    if after or before:
        cursor, params = f"where pair_id {'>' if after else '<'} ?", params + [after or before]
    # one scan finds the matching ids (text search reads every response once); count and page come from them
    found = r.con.execute(f"""
        with hits as materialized (select d.pair_id from {source} where {where})
        select (select count(*) from hits), list(pair_id order by pair_id {'desc' if before else 'asc'})
        from (select pair_id from hits {cursor} order by pair_id {'desc' if before else 'asc'} limit {int(limit) + 1})
        """, params).fetchone()
    total, ids = found[0], found[1] or []
    rating = "j" if by_judge else "d"
    extra = ", ".join(c for c in ("d.agreement", "d.failed", "d.position_flipped", "d.judge_models")
                      if c.split(".")[1] in cols)
    rows = r.rows(f"""
        select d.pair_id, left(d.instruction, {SNIPPET}) as instruction, length(d.instruction) > {SNIPPET} as cut,
               d.decision, d.reason, {rating}.chosen_rating, {rating}.rejected_rating,
               {rating}.chosen_rating - {rating}.rejected_rating as margin{', ' + extra if extra else ''}
        from {source} where d.pair_id in (select unnest(?::varchar[]))
        order by d.pair_id {'desc' if before else 'asc'}""", join_params + [ids])
    more = len(rows) > limit
    rows = rows[:limit]
    if before:
        rows.reverse()
    page = Page(rows, total)
    if rows:
        if before:  # came back from a later page: there is a next page; a previous one if the scan had more
            page.after, page.before = rows[-1]["pair_id"], rows[0]["pair_id"] if more else None
        else:
            page.after, page.before = rows[-1]["pair_id"] if more else None, rows[0]["pair_id"] if after else None
    page.reasons = [x[0] for x in r.con.execute(
        f"select distinct reason from {rel} where reason is not null order by 1").fetchall()]
    if r.has(RATINGS_MODEL):
        page.judges = [x[0] for x in r.con.execute(
            f"select distinct judge from {r.need(RATINGS_MODEL)} where judge is not null order by 1").fetchall()]
    return page


# ---- one pair -------------------------------------------------------------------------------------------

def pair_detail(r: Reader, audit: str, pair_id: str) -> dict | None:
    found = r.rows(f"select * from {r.need(audit)} where pair_id = ?", [pair_id])
    if not found:
        return None
    pair = found[0]
    pair["per_judge"] = r.rows(f"select * from {r.need(RATINGS_MODEL)} where pair_id = ? order by judge",
                               [pair_id]) if r.has(RATINGS_MODEL) else []
    return pair
