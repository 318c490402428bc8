"""Structured output and the `rationale:` option: the JSON schema sent as response_format (to the fake judge on
loopback, which answers with the schema's properties), answers read without rationales, and both settings part
of the judge identity so changing them re-judges."""

from __future__ import annotations

import json

import pytest

from judge_fixtures import build, judge_config, judge_project, judged
from prefclean.judge.grammar import prometheus_absolute_grammar, ratings_grammar
from prefclean.judge.identity import panel_identity
from prefclean.judge.parsing import parse_ratings, parse_verdict
from prefclean.judge.structured import ratings_schema
from prefclean.project import load_project

ROWS = [{"id": i, "instruction": f"question {i}", "generations": [f"good {i} [[rate=5]]", f"bad {i} [[rate=2]]"]}
        for i in range(3)]
ABSOLUTE = """{{ config(materialized='table') }}
select id, {{ judge_absolute('instruction', 'generations[1]', 'Is it right?', judge='fake') }} as j
from {{ source('pairs') }}"""


def project(make_project, server, **settings):
    return judge_project(make_project, server, ROWS, judges={"fake": judge_config(server, **settings)})


def test_structured_output_sends_the_tasks_json_schema_and_reads_the_json_answer(make_project, run_cli, fake_judge):
    fake_judge.control(record_prompts=True)
    root = project(make_project, fake_judge, structured_output=True)
    build(run_cli, root)
    [sent] = fake_judge.stats()["response_formats"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    schema = sent["json_schema"]["schema"]
    assert schema == ratings_schema(2, "full") and schema["required"] == ["rationales", "ratings"]
    assert schema["properties"]["ratings"]["items"]["enum"] == [1, 2, 3, 4, 5]
    assert schema["properties"]["ratings"]["minItems"] == schema["properties"]["ratings"]["maxItems"] == 2
    assert all("Reply with JSON only" in p for p in fake_judge.stats()["prompts"])
    for row in judged(root):
        assert row["j"]["ratings"] == [5, 2] and row["j"]["error"] is None
        assert row["j"]["rationales"] == ["text 1 earns 5.", "text 2 earns 2."]
        assert json.loads(row["j"]["raw"])["ratings"] == [5, 2]


def test_rationale_none_asks_for_ratings_only_and_stores_null_rationales(make_project, run_cli, fake_judge):
    fake_judge.control(record_prompts=True)
    root = project(make_project, fake_judge, structured_output=True, rationale="none")
    build(run_cli, root)
    [sent] = fake_judge.stats()["response_formats"]
    assert list(sent["json_schema"]["schema"]["properties"]) == ["ratings"]
    assert all('"ratings"' in p and '"rationales"' not in p for p in fake_judge.stats()["prompts"])
    for row in judged(root):
        assert row["j"]["ratings"] == [5, 2] and row["j"]["rationales"] == [None, None]
        assert row["j"]["error"] is None and row["j"]["raw"] == '{"ratings": [5, 2]}'


def test_rationale_none_without_structured_output_asks_for_rating_lines_only(make_project, run_cli, fake_judge):
    fake_judge.control(record_prompts=True)
    root = project(make_project, fake_judge, rationale="none")
    build(run_cli, root)
    assert fake_judge.stats()["response_formats"] == []
    prompts = fake_judge.stats()["prompts"]
    assert prompts and all("Rating: <1-5>" in p and "Rationale:" not in p for p in prompts)
    assert [row["j"]["ratings"] for row in judged(root)] == [[5, 2]] * 3  # the fake judge still writes rationales


def test_prometheus_structured_output_sends_feedback_and_score(make_project, run_cli, fake_judge):
    root = judge_project(make_project, fake_judge, ROWS, models={"graded": ABSOLUTE},
                         judges={"fake": judge_config(fake_judge, structured_output=True)})
    build(run_cli, root)
    [sent] = fake_judge.stats()["response_formats"]
    assert sent["json_schema"]["schema"]["required"] == ["feedback", "score"]
    rows = judged(root, "select id, j from graded order by id")
    assert [r["j"]["ratings"] for r in rows] == [[5]] * 3 and all(r["j"]["error"] is None for r in rows)


def test_changing_structured_output_or_rationale_rejudges_every_row(make_project, run_cli, fake_judge):
    root = project(make_project, fake_judge)
    build(run_cli, root)
    base = panel_identity(load_project(root), "fake", "overall-rating")
    seen = {base}
    for settings in ({"structured_output": True}, {"structured_output": True, "rationale": "short"},
                     {"rationale": "none"}):
        root_changed = project(make_project, fake_judge, **settings)
        identity = panel_identity(load_project(root_changed), "fake", "overall-rating")
        assert identity not in seen, settings
        seen.add(identity)
    # The same project with the setting changed asks the judge again (the cache key differs too).
    config = root / "prefclean.yml"
    config.write_text(config.read_text().replace("model: fake-judge", "model: fake-judge\n    rationale: short"))
    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 3


def test_a_bad_rationale_value_is_one_line_naming_the_key(make_project, run_cli, fake_judge):
    root = project(make_project, fake_judge, rationale="brief")
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "`judges.fake.rationale` is 'brief', expected 'none', 'short' or 'full'" in result.output, result.output


@pytest.mark.parametrize("raw, n, ratings, rationales", [
    ('{"ratings": [4, 2]}', 2, [4, 2], [None, None]),
    ('{"rationales": ["ok", "meh"], "ratings": [4, 2]}', 2, [4, 2], ["ok", "meh"]),
    ("#### Output for Text 1\nRating: 4\n#### Output for Text 2\nRating: 1\n", 2, [4, 1], [None, None]),
])
def test_ratings_without_rationales_parse_without_error(raw, n, ratings, rationales):
    parsed = parse_ratings(raw, n)
    assert parsed.error is None and parsed.ratings == ratings and parsed.rationales == rationales


@pytest.mark.parametrize("raw, relative, expected", [
    ('{"feedback": "fine", "score": 4}', False, (4, "fine", None)),
    ('{"score": 2}', False, (2, None, None)),
    ('{"feedback": "B wins", "result": "B"}', True, ("B", "B wins", None)),
    ('{"result": "C"}', True, (None, None, "result 'C' is not A or B")),
    ('{"feedback": "x"}', False, (None, "x", "JSON answer has no `score`")),
    ("[RESULT] 3", False, (3, None, None)),
])
def test_prometheus_json_and_bare_result_answers(raw, relative, expected):
    assert parse_verdict(raw, relative=relative) == expected


def test_grammars_follow_the_rationale_setting():
    assert "Rationale" not in ratings_grammar(2, "none") and ratings_grammar(2, "none").count("Rating: ") == 2
    assert "{0,7}" in ratings_grammar(1, "short") and "{0,19}" in ratings_grammar(1, "full")
    assert prometheus_absolute_grammar("none") == 'root ::= "[RESULT] " [1-5] "\\n"\n'


def test_structured_output_json_object_sends_the_schema_as_llama_cpp_pythons_server_takes_it(
        make_project, run_cli, fake_judge):
    root = project(make_project, fake_judge, structured_output="json_object", rationale="short")
    build(run_cli, root)
    [sent] = fake_judge.stats()["response_formats"]
    assert sent == {"type": "json_object", "schema": ratings_schema(2, "short")}
    assert [row["j"]["ratings"] for row in judged(root)] == [[5, 2]] * 3
