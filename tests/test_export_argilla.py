"""The Argilla export and `prefclean pull argilla`, against a real argilla-server 2.8 on 127.0.0.1 (with osmem
and Redis, see tests/servers/argilla_stack.py), checked with the real `argilla` SDK.

The project is small and needs no judge: inline pairs and ratings feed the example project's own
models/pair_decisions.sql, so the human-review override tested here is the one users get."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest

from prefclean.errors import EXIT_FAILED
from servers.argilla_stack import ArgillaStack, missing_requirement

rg = pytest.importorskip("argilla")

pytestmark = pytest.mark.argilla

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = "review"
JUDGE = "judge-model-x"

PAIRS = [  # `flip`: the shuffle showed rejected first
    {"pair_id": "p1", "system": "Be brief.", "instruction": "Capital of France?", "chosen": "Paris.",
     "rejected": "Lyon.", "flip": True},
    {"pair_id": "p2", "system": "", "instruction": "2 + 2?", "chosen": "4", "rejected": "four", "flip": False},
    {"pair_id": "p3", "system": "", "instruction": "Largest planet?", "chosen": "Mars.", "rejected": "Jupiter.",
     "flip": True},
]
RATINGS = [  # the judge's view, per chosen/rejected
    {"pair_id": "p1", "chosen_rating": 5, "rejected_rating": 2, "chosen_rationale": "correct", "rejected_rationale": "wrong city"},
    {"pair_id": "p2", "chosen_rating": 4, "rejected_rating": 4, "chosen_rationale": "fine", "rejected_rationale": "fine too"},
    {"pair_id": "p3", "chosen_rating": 2, "rejected_rating": 5, "chosen_rationale": "wrong", "rejected_rationale": "right"},
]
SHUFFLED = """
{{ config(materialized='table') }}
select pair_id, system, instruction || '{{ var("edit", "") }}' as instruction, chosen, rejected,
  case when flip then [rejected, chosen] else [chosen, rejected] end as generations,
  case when flip then ['rejected', 'chosen'] else ['chosen', 'rejected'] end as "order"
from {{ source('pairs') }}
"""
PAIR_RATINGS = f"""
{{{{ config(materialized='table') }}}}
select pair_id, 'default' as judge, '{JUDGE}' as judge_model,
  chosen_rating::double as chosen_rating, rejected_rating::double as rejected_rating,
  chosen_rationale, rejected_rationale,
  null::double as chosen_rating_swapped, null::double as rejected_rating_swapped, false as bias_checked,
  null::varchar as error, null::varchar as swapped_error, 'raw answer' as raw, 10 as prompt_tokens, 5 as completion_tokens
from {{{{ source('ratings') }}}}
"""
VARS = {"min_margin": 1, "poor_max": 2, "min_agreement": 1.0, "allow_flip": False, "drop_position_biased": True,
        "check_position_bias": True,  # pair_decisions reads it (the ratings here are given, not judged)
        "edit": ""}


@pytest.fixture(scope="session")
def argilla_server(tmp_path_factory):
    why = missing_requirement()
    if why:
        pytest.skip(why)
    stack = ArgillaStack(tmp_path_factory.mktemp("argilla")).start()
    yield stack
    stack.stop()


@pytest.fixture
def owner(argilla_server):
    return rg.Argilla(api_url=argilla_server.api_url, api_key=argilla_server.api_key)


@pytest.fixture
def review_project(make_project, run_cli, argilla_server, monkeypatch):
    """A built project whose export `argilla` sends pair_decisions to `dataset` in workspace `review`."""
    monkeypatch.setenv("ARGILLA_API_URL", argilla_server.api_url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla_server.api_key)
    monkeypatch.setenv("PREFCLEAN_PROGRESS", "0")

    def make(dataset: str, **options) -> Path:
        root = make_project(
            config={"vars": VARS,
                    "sources": {"pairs": {"type": "inline", "rows": PAIRS},
                                "ratings": {"type": "inline", "rows": RATINGS}},
                    "exports": {"argilla": {"model": "pair_decisions", "target": "argilla", "dataset": dataset,
                                            "workspace": WORKSPACE, "on_build": False, **options}}},
            models={"shuffled_pairs": SHUFFLED, "pair_ratings": PAIR_RATINGS,
                    "pair_decisions": (REPO / "models" / "pair_decisions.sql").read_text()})
        result = run_cli("build", cwd=root)
        assert result.exit_code == 0, result
        return root

    return make


def dataset_or_none(client, name):
    ws = client.workspaces(name=WORKSPACE)
    if ws is None:
        return None
    return next((d.get() for d in ws.datasets if d.name == name), None)


def records_by_id(ds) -> dict:
    return {r.id: r for r in ds.records(with_suggestions=True, with_responses=True)}


def test_export_review_pull_and_override(review_project, run_cli, query, owner):
    root = review_project("pairs_review")
    result = run_cli("export", "argilla", cwd=root)
    assert result.exit_code == 0, result
    assert "3 records of pair_decisions -> Argilla dataset 'pairs_review' in workspace 'review'" in result.output

    ds = dataset_or_none(owner, "pairs_review")  # the workspace did not exist: the export made it
    assert ds is not None
    assert [f.name for f in ds.settings.fields] == ["system", "instruction", "response_1", "response_2"]
    questions = {q.name: q for q in ds.settings.questions}
    assert isinstance(questions["rating_response_1"], rg.RatingQuestion)
    assert list(questions["rating_response_2"].values) == [1, 2, 3, 4, 5]
    assert isinstance(questions["rationale_response_2"], rg.TextQuestion)
    assert list(questions["ranking"].values) == ["response_1", "response_2"]

    records = records_by_id(ds)
    assert sorted(records) == ["p1", "p2", "p3"]
    p1 = records["p1"]  # shown rejected first, as the judge saw it
    assert p1.fields["instruction"] == "Capital of France?" and p1.fields["system"] == "Be brief."
    assert (p1.fields["response_1"], p1.fields["response_2"]) == ("Lyon.", "Paris.")
    suggested = {s.question_name: s for s in p1.suggestions}
    assert (suggested["rating_response_1"].value, suggested["rating_response_2"].value) == (2, 5)
    assert suggested["rationale_response_1"].value == "wrong city"
    assert suggested["ranking"].value == ["response_2", "response_1"]
    assert {s.agent for s in p1.suggestions} == {JUDGE}
    assert suggested["rating_response_2"].score == pytest.approx(1.0)  # the panel's agreement
    assert p1.metadata["decision"] == "keep" and p1.metadata["reason"] == "judge_agrees"
    assert p1.metadata["margin"] == pytest.approx(3.0)
    assert p1.metadata["order"] == "rejected,chosen" and p1.metadata["pair_id"] == "p1"
    assert "system" not in records["p2"].fields  # an empty system prompt is left out, not sent as ""
    assert records["p3"].metadata["decision"] == "drop"

    # a reviewer disagrees with the judge on p1; the owner leaves an unsubmitted draft on p2
    reviewer = rg.User(username="reviewer", password="reviewer-pass-1", role="annotator", client=owner).create()
    p1.responses.add(rg.Response("rating_response_1", 5, user_id=reviewer.id, status="submitted"))
    p1.responses.add(rg.Response("rating_response_2", 1, user_id=reviewer.id, status="submitted"))
    p1.responses.add(rg.Response("rationale_response_1", "Lyon is not it, but the other is worse", user_id=reviewer.id,
                                 status="submitted"))
    ranked = [{"value": "response_1", "rank": 1}, {"value": "response_2", "rank": 2}]  # the SDK drops ranks of plain names
    p1.responses.add(rg.Response("ranking", ranked, user_id=reviewer.id, status="submitted"))
    p2 = records["p2"]
    p2.responses.add(rg.Response("rating_response_1", 3, user_id=owner.me.id, status="draft"))
    ds.records.log([p1, p2])

    # exporting again (instructions edited) updates the same records and keeps the review
    assert run_cli("build", "--vars", '{"edit": " (v2)"}', cwd=root).exit_code == 0
    result = run_cli("export", "argilla", "--vars", '{"edit": " (v2)"}', cwd=root)
    assert result.exit_code == 0, result
    records = records_by_id(ds)
    assert sorted(records) == ["p1", "p2", "p3"]
    assert records["p1"].fields["instruction"] == "Capital of France? (v2)"
    assert len(records["p1"].responses["rating_response_1"]) == 1

    result = run_cli("pull", "argilla", "argilla", cwd=root)
    assert result.exit_code == 0, result
    assert "pulled 1 submitted reviews (and 1 draft) into human.reviews" in result.output
    rows = query(root, 'select pair_id, "user", status, queue, ratings, ranking, "order", rationales[1], '
                       "updated_at is not null from human.reviews order by pair_id")
    assert rows == [("p1", "reviewer", "submitted", "all", [5, 1], ["response_1", "response_2"],
                     ["rejected", "chosen"], "Lyon is not it, but the other is worse", True),
                    ("p2", "owner", "draft", "all", [3, None], None, ["chosen", "rejected"], None, True)]

    # the example cleaning model lets the reviewer's ratings override the judge
    before = dict(query(root, "select pair_id, decision from pair_decisions"))
    assert before["p1"] == "keep"
    assert run_cli("build", cwd=root).exit_code == 0
    after = {r[0]: r[1:] for r in query(root, "select pair_id, decision, reason, human_chosen, human_rejected "
                                              "from pair_decisions")}
    assert after["p1"] == ("flip", "human_review: judge_prefers_rejected", 1, 5)
    assert after["p2"][:2] == ("drop", "tie") and after["p2"][2] is None  # a draft is not a review
    assert after["p3"][:2] == ("drop", "judge_prefers_rejected") and before["p3"] == "drop"


def one_error_line(output: str) -> str:
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "ERROR" in line or line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def test_bad_key_is_one_line_and_writes_nothing(review_project, run_cli, owner, monkeypatch):
    root = review_project("never_made")
    monkeypatch.setenv("ARGILLA_API_KEY", "not-the-key-123")
    result = run_cli("export", "argilla", cwd=root)
    assert result.exit_code == EXIT_FAILED
    line = one_error_line(result.output)
    assert "refused the API key" in line and "not-the-key-123" not in result.output
    assert dataset_or_none(owner, "never_made") is None


def test_unreachable_server_is_one_line(review_project, run_cli, owner, monkeypatch):
    root = review_project("never_made_either")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ARGILLA_API_URL", f"http://127.0.0.1:{port}")
    result = run_cli("export", "argilla", cwd=root)
    assert result.exit_code == EXIT_FAILED
    assert f"cannot reach the Argilla server at http://127.0.0.1:{port}" in one_error_line(result.output)
    result = run_cli("pull", "argilla", "argilla", cwd=root)
    assert result.exit_code == EXIT_FAILED and "cannot reach" in one_error_line(result.output)
    assert dataset_or_none(owner, "never_made_either") is None


def test_incompatible_dataset_is_left_alone(review_project, run_cli, owner):
    ws = owner.workspaces(name=WORKSPACE) or rg.Workspace(name=WORKSPACE, client=owner).create()
    settings = rg.Settings(fields=[rg.TextField("instruction"), rg.TextField("response_1"), rg.TextField("response_2")],
                           questions=[rg.LabelQuestion("rating_response_1", labels=["good", "bad"])])
    rg.Dataset(name="clash", workspace=ws, settings=settings, client=owner).create()
    root = review_project("clash")
    result = run_cli("export", "argilla", cwd=root)
    assert result.exit_code == EXIT_FAILED
    line = one_error_line(result.output)
    assert "dataset 'clash' in workspace 'review' exists with other settings" in line
    assert "no text field 'system'" in line
    assert len(list(dataset_or_none(owner, "clash").records)) == 0


def test_rejected_record_removes_the_new_dataset(review_project, run_cli, owner):
    # a custom query whose decision is not one Argilla's metadata accepts: the server refuses the batch
    root = review_project("half", query="select pair_id, instruction, generations, "
                                        "case when pair_id = 'p2' then 'maybe' else decision end as decision from {rel}")
    result = run_cli("export", "argilla", cwd=root)
    assert result.exit_code == EXIT_FAILED
    line = one_error_line(result.output)
    assert "pair p2" in line and "'maybe' is not an allowed term" in line and "was removed" in line
    assert dataset_or_none(owner, "half") is None


def test_pull_unknown_dataset(review_project, run_cli):
    root = review_project("not_exported")
    result = run_cli("pull", "argilla", "argilla", cwd=root)
    assert result.exit_code == EXIT_FAILED
    assert "no dataset 'not_exported' in workspace 'review'" in one_error_line(result.output)


def test_stack_reports_startup(argilla_server):
    """The fixture's server answers the SDK as the owner it created (guards the stack helper itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        me = rg.Argilla(api_url=argilla_server.api_url, api_key=argilla_server.api_key).me
    assert (me.username, me.role.value) == ("owner", "owner")


def test_a_server_that_is_not_argilla(tmp_path):
    """Needs no Argilla stack: any other HTTP server on loopback gets one clear line."""
    import threading
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    import pyarrow as pa

    from prefclean.export.argilla import ArgillaExportError, push_pairs

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    table = pa.Table.from_pylist([{"pair_id": "p1", "instruction": "q", "generations": ["a", "b"]}])
    try:
        with pytest.raises(ArgillaExportError, match=r"does not answer like an Argilla 2.x server \(NotFoundError 404"):
            push_pairs(table, "d", WORKSPACE, url, "some-key-123")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("rows, expected", [
    ([{"pair_id": "p1", "instruction": "q", "generations": ["a", "b"]}] * 2, "pair_id 'p1' is repeated"),
    ([{"pair_id": "p1", "instruction": "q", "generations": ["a", "b"]},
      {"pair_id": "p2", "instruction": "q", "generations": ["a", "b", "c"]}], "rows have [2, 3] generations"),
    ([{"pair_id": "p1", "instruction": "q", "generations": ["a", "b"], "ratings": [7, 1]}], "pair p1: rating 7 is not in 1-5"),
    ([{"pair_id": "p1", "instruction": "q"}], "the table has no column 'generations'"),
])
def test_bad_tables_fail_before_any_request(rows, expected):
    import pyarrow as pa

    from prefclean.export.argilla import ArgillaExportError, push_pairs

    # the URL is never contacted: the table is checked first
    with pytest.raises(ArgillaExportError) as info:
        push_pairs(pa.Table.from_pylist(rows), "d", WORKSPACE, "http://127.0.0.1:9", "some-key-123")
    assert expected in str(info.value)
