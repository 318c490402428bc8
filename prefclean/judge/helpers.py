"""The Jinja helpers models call to judge rows: each writes the SQL of a call to the judge UDF.

    select *, {{ judge('instruction', 'generations', aspect='overall-rating') }} as judgment

Offered to every template as prefclean's own template globals (see plugins); importing this module does
not import the judge itself.
"""

from __future__ import annotations

from .record import RESULT_SQL


def _sql_literal(value) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def judge(instruction: str, generations: str, aspect: str = "overall-rating", judge: str | None = None,
          task: str = "ultrafeedback", reference: str | None = None, reverse: bool = False) -> str:
    """SQL for a judge call. instruction/generations/reference are SQL expressions (column names)."""
    gens = f"list_reverse({generations})" if reverse else generations
    return (f"prefclean_judge({_sql_literal(task)}, {_sql_literal(judge or 'default')}, {_sql_literal(aspect)}, "
            f"{instruction}, {gens}, {reference or 'NULL::VARCHAR'})")


def judgment_type() -> str:
    """The SQL type of one judgment, e.g. for a typed NULL: NULL::{{ judgment_type() }}[]."""
    return RESULT_SQL


def judge_absolute(instruction: str, response: str, rubric: str, reference: str | None = None,
                   judge: str | None = None) -> str:
    """Prometheus-style absolute grading (1-5) of one response against a rubric (SQL string literal text)."""
    return (f"prefclean_judge('prometheus-absolute', {_sql_literal(judge or 'default')}, {_sql_literal(rubric)}, "
            f"{instruction}, [{response}], {reference or 'NULL::VARCHAR'})")


def judge_relative(instruction: str, response_a: str, response_b: str, rubric: str, reference: str | None = None,
                   judge: str | None = None) -> str:
    """Prometheus-style relative grading: which of two responses is better (winner 1 = A, 2 = B)."""
    return (f"prefclean_judge('prometheus-relative', {_sql_literal(judge or 'default')}, {_sql_literal(rubric)}, "
            f"{instruction}, [{response_a}, {response_b}], {reference or 'NULL::VARCHAR'})")
