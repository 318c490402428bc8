"""`escalate:` a cheap judge first, a stronger one only for the pairs the cheap one is unsure of.

    judges:
      small: {engine: openai, model: small-8b, escalate: {to: big, margin: 1}}
      big:   {engine: openai, model: big-70b}

A panel member whose judge escalates is asked first; models/judged_pairs.sql then asks the `to` judge about
the pairs whose first judgment is unsure (macros `escalation_needed`: its two ratings at most `margin` apart,
the uncertain bias check's notion of close, or an answer that could not be read), and keeps the stronger
judgment for them. The swapped pass of the bias check asks whichever judge made a pair's judgment. Under
--judge every pair is judged by that one judge: no escalation.
"""

from __future__ import annotations

from ..errors import JudgeError
from .judges import resolve_judge


def judge_escalation(project, judges) -> list[dict]:
    """Per panel member, in order: {'position': 1-based, 'judge': its name as the panel gives it, 'to': the
    stronger judge's name or None, 'margin': k}. The project is bound by the compiler."""
    names = [judges] if isinstance(judges, str) else list(judges)
    override = project.vars.get("judge_override")
    out = []
    for name in names:
        step = None
        if not override:
            try:
                step = resolve_judge(project, name).escalate
            except JudgeError:
                step = None  # the judge says so when it runs, and fails its model then
        out.append({"position": len(out) + 1, "judge": name, "to": step.to if step else None,
                    "margin": step.margin if step else None})
    return out


judge_escalation.with_project = True  # type: ignore[attr-defined]


def escalation_targets(project) -> dict[str, str]:
    """{stronger judge: the judge that escalates to it} for the judges of prefclean.yml."""
    return {j.escalate.to: name for name, j in project.judges.items() if j.escalate is not None}
