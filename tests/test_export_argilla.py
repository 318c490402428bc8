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
  null::varchar as error, null::varchar as swapped_error, 'raw answer' as raw, 10 as prompt_tokens, 5 as completion_tokens,
  false as escalated  -- pair_decisions reads it (escalate:)
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


# --- The review queue with real annotators (issue 18 §1 and its Tests) ---------------------------------------
# Twelve pairs rated by a panel (judges a, b; p08 also c). The uncertainty each gets (review_queue.py), by hand:
#   p11 (3,4)x2: margin -1 -> 0.5 + prefers rejected 1                                  = 1.5
#   p08 a(5,1) b(1,5) c(5,2): 2 of 3 agree -> split 2/3; mean margin 1 -> 0.5           = 1.1667
#   p06 (3,3)x2: margin 0 -> 1 ; p09 (5,2)x2, a flipped when swapped: 1 (gap 3) ; p07 (2,5)(1,5): 1 (gap 3.5)
#   p10 (4,3)x2: margin 1 -> 0.5 ; the rest: 0
# Judge decisions: keep p01-p05, p10, p12 (7 pairs); drop p06-p09, p11 (5). A calibration sample of 4 is
# allocated 2 keep + 2 drop; with seed 0 md5("0:pid") puts p02, p03, p10 first among keep and p07, p06, p08
# among drop, so the sample is p02, p03, p06, p07; at K=5 the fifth draw goes to keep: p10.
E2E_PAIRS = [{"pair_id": f"p{i:02d}", "system": "", "instruction": f"question {i}", "chosen": f"good {i}",
              "rejected": f"bad {i}", "flip": i % 2 == 0} for i in range(1, 13)]
E2E_RATINGS = [(p, j, c, r, cs, rs) for p, j, c, r, cs, rs in [
    ("p01", "a", 5, 1, None, None), ("p01", "b", 5, 1, None, None),
    ("p02", "a", 5, 2, None, None), ("p02", "b", 4, 1, None, None),
    ("p03", "a", 4, 1, None, None), ("p03", "b", 5, 2, None, None),
    ("p04", "a", 5, 1, None, None), ("p04", "b", 5, 2, None, None),
    ("p05", "a", 4, 2, None, None), ("p05", "b", 4, 2, None, None),
    ("p06", "a", 3, 3, None, None), ("p06", "b", 3, 3, None, None),
    ("p07", "a", 2, 5, None, None), ("p07", "b", 1, 5, None, None),
    ("p08", "a", 5, 1, None, None), ("p08", "b", 1, 5, None, None), ("p08", "c", 5, 2, None, None),
    ("p09", "a", 5, 2, 2, 5), ("p09", "b", 5, 2, None, None),
    ("p10", "a", 4, 3, None, None), ("p10", "b", 4, 3, None, None),
    ("p11", "a", 3, 4, None, None), ("p11", "b", 3, 4, None, None),
    ("p12", "a", 5, 1, None, None), ("p12", "b", 5, 1, None, None)]]
E2E_PANEL = """
{{ config(materialized='table') }}
select pair_id, judge, 'model-' || judge as judge_model,
  chosen_rating::double as chosen_rating, rejected_rating::double as rejected_rating,
  'why ' || judge as chosen_rationale, 'why not ' || judge as rejected_rationale,
  chosen_swapped::double as chosen_rating_swapped, rejected_swapped::double as rejected_rating_swapped,
  chosen_swapped is not null as bias_checked,
  null::varchar as error, null::varchar as swapped_error, 'raw' as raw, 10 as prompt_tokens, 5 as completion_tokens,
  false as escalated
from {{ source('ratings') }}
"""


def annotator(owner, api_url: str, ws, name: str):
    """A new annotator of workspace `ws` and an SDK client logged in as them (their key, read as the owner)."""
    user = rg.User(username=name, password=f"{name}-password-1", role="annotator", client=owner).create()
    ws.add_user(user)
    key = owner.http_client.get(f"/api/v1/users/{user.id}").json()["api_key"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rg.Argilla(api_url=api_url, api_key=key)


def respond(client, server_ids: dict, orders: dict, pair: str, chosen: int | None, rejected: int | None,
            status: str = "submitted"):
    """`client`'s response to a pair's record, through the SDK's records API, the ratings given for chosen and
    rejected put where the reviewer saw each response (the record's hidden `order`)."""
    from argilla._models._record._response import UserResponseModel

    by_label = {"chosen": chosen, "rejected": rejected}
    values = {} if chosen is None else {
        f"rating_response_{i}": {"value": by_label[label]} for i, label in enumerate(orders[pair], 1)}
    client.api.records.create_record_response(
        record_id=server_ids[pair], user_response=UserResponseModel(values=values, status=status, user_id=client.me.id))


def listed(owner, ds) -> dict:
    """pair_id -> the record as the REST listing gives it (server id, metadata, responses, status)."""
    items = owner.http_client.get(f"/api/v1/datasets/{ds.id}/records",
                                  params={"include": ["responses", "suggestions"], "limit": 1000}).json()["items"]
    return {r["external_id"]: r for r in items}


def test_review_queue_with_three_annotators_and_the_calibration_report_by_hand(
        make_project, run_cli, query, owner, argilla_server, monkeypatch):
    monkeypatch.setenv("ARGILLA_API_URL", argilla_server.api_url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla_server.api_key)
    monkeypatch.setenv("PREFCLEAN_PROGRESS", "0")
    ratings = [{"pair_id": p, "judge": j, "chosen_rating": c, "rejected_rating": r, "chosen_swapped": cs,
                "rejected_swapped": rs} for p, j, c, r, cs, rs in E2E_RATINGS]
    root = make_project(
        config={"vars": VARS,
                "sources": {"pairs": {"type": "inline", "rows": E2E_PAIRS},
                            "ratings": {"type": "inline", "rows": ratings}},
                "exports": {"argilla": {"model": "pair_decisions", "target": "argilla", "dataset": "queue",
                                        "workspace": WORKSPACE, "on_build": False, "review": "uncertain",
                                        "budget": 3, "calibration": 4, "min_submitted": 2}}},
        models={"shuffled_pairs": SHUFFLED, "pair_ratings": E2E_PANEL,
                "pair_decisions": (REPO / "models" / "pair_decisions.sql").read_text()})
    assert run_cli("build", cwd=root).exit_code == 0

    result = run_cli("export", "argilla", cwd=root)
    assert result.exit_code == 0, result
    assert ("7 records of pair_decisions -> Argilla dataset 'queue' in workspace 'review' at "
            f"{argilla_server.api_url}: 3 uncertain (budget 3; 0 already in the dataset, not sent again); "
            "4 calibration (4 of 4 in the dataset)") in result.output
    ds = dataset_or_none(owner, "queue")
    assert ds.settings.distribution.min_submitted == 2
    records = listed(owner, ds)
    queues = {p: r["metadata"]["queue"] for p, r in records.items()}
    assert queues == {"p11": "uncertain", "p08": "uncertain", "p09": "uncertain",
                      "p02": "calibration", "p03": "calibration", "p06": "calibration", "p07": "calibration"}
    assert {p: r["metadata"].get("uncertainty") for p, r in records.items() if queues[p] == "uncertain"} == {
        "p11": 1.5, "p08": pytest.approx(1.1667), "p09": 1.0}
    for pair, record in records.items():
        if queues[pair] == "calibration":  # nothing of the judge's to anchor the reviewer
            assert record["suggestions"] == [], pair
            assert not {"decision", "reason", "margin", "uncertainty"} & set(record["metadata"]), pair
        else:
            assert {s["value"] for s in record["suggestions"] if isinstance(s["value"], int)} and \
                record["metadata"]["decision"] == "drop"
    server_ids = {p: r["id"] for p, r in records.items()}
    orders = {p: r["metadata"]["order"].split(",") for p, r in records.items()}

    ws = owner.workspaces(name=WORKSPACE)
    ann, bob, cy = (annotator(owner, argilla_server.api_url, ws, name) for name in ("ann", "bob", "cy"))
    # (chosen, rejected) as each reviewer rated them; judge verdicts: p02 chosen, p03 chosen, p06 tie, p07 rejected
    for pair, c, r in [("p02", 5, 2), ("p03", 2, 4), ("p06", 3, 3), ("p07", 1, 5), ("p09", 5, 1)]:
        respond(ann, server_ids, orders, pair, c, r)
    for pair, c, r in [("p02", 4, 4), ("p03", 2, 5)]:  # bob after ann: his are the latest
        respond(bob, server_ids, orders, pair, c, r)
    respond(bob, server_ids, orders, "p11", 2, 2, status="draft")
    for pair, c, r in [("p11", 4, 2), ("p08", 5, 1)]:
        respond(cy, server_ids, orders, pair, c, r)
    respond(cy, server_ids, orders, "p06", None, None, status="discarded")
    statuses = {p: r["status"] for p, r in listed(owner, ds).items()}
    assert statuses["p02"] == "completed" and statuses["p06"] == "pending"  # min_submitted 2 at work

    result = run_cli("pull", "argilla", "argilla", cwd=root)
    assert result.exit_code == 0, result
    assert "pulled 9 submitted reviews (and 1 draft, 1 discarded) into human.reviews" in result.output
    assert query(root, 'select "user", status, queue from human.reviews where pair_id = \'p11\' order by 1') == [
        ("bob", "draft", "uncertain"), ("cy", "submitted", "uncertain")]
    assert query(root, 'select count(*) from human.reviews where pair_id = \'p06\' and "user" = \'cy\' '
                       "and status = 'discarded' and ratings = [null, null]") == [(1,)]

    # built with the reviews (they override decisions), then exported again with a larger sample: nothing
    # is sent twice, the sample keeps its 4 pairs and grows by p10, and the queue goes on with p05 and p04
    assert run_cli("build", cwd=root).exit_code == 0
    result = run_cli("export", "argilla", "--budget", "2", "--calibration", "5", cwd=root)
    assert result.exit_code == 0, result
    assert ": 2 uncertain (budget 2; 7 already in the dataset, not sent again); 1 calibration (5 of 5 in the " \
           "dataset)" in result.output
    records = listed(owner, ds)
    assert len(records) == 10
    assert {p: r["metadata"]["queue"] for p, r in records.items() if p not in queues} == {
        "p10": "calibration", "p05": "uncertain", "p04": "uncertain"}
    assert len(records["p02"]["responses"]) == 2 and len(records["p06"]["responses"]) == 2
    server_ids["p10"], orders["p10"] = records["p10"]["id"], records["p10"]["metadata"]["order"].split(",")
    respond(ann, server_ids, orders, "p10", 4, 2)
    respond(bob, server_ids, orders, "p10", 4, 1)
    assert run_cli("pull", "argilla", "argilla", cwd=root).exit_code == 0

    result = run_cli("calibrate", cwd=root)
    assert result.exit_code == 0, result
    import json

    r = json.loads((root / "target" / "summary.json").read_text())["calibration"]
    # By hand, on the calibration sample only (p08, p09, p11 of the uncertain queue are left out):
    #   judge  p02 chosen, p03 chosen,   p06 tie, p07 rejected, p10 chosen
    #   human  p02 tie,    p03 rejected, p06 tie, p07 rejected, p10 chosen   (the latest submitted review)
    #   agreement 3/5; judge labels (chosen 3, rejected 1, tie 1), human (1, 2, 2):
    #   chance (3*1 + 1*2 + 1*2) / 25 = 0.28 -> kappa (0.6 - 0.28) / 0.72 = 4/9
    assert (r["sample"], r["left_out_uncertain"], r["reviewed_pairs"]) == ("calibration", 3, 5)
    jh = r["judge_vs_human"]
    assert (jh["pairs"], jh["agreement"], jh["kappa"]) == (5, 0.6, round(4 / 9, 4))
    assert jh["confusion"] == {"chosen": {"chosen": 1, "rejected": 1, "tie": 1},
                               "rejected": {"chosen": 0, "rejected": 1, "tie": 0},
                               "tie": {"chosen": 0, "rejected": 0, "tie": 1}}
    # human vs human, first two reviews: p02 (chosen, tie), p03 (rejected, rejected), p10 (chosen, chosen):
    #   agreement 2/3; labels (chosen 2, rejected 1) and (tie 1, rejected 1, chosen 1): chance 3/9 -> kappa 0.5
    assert r["human_vs_human"] == {"pairs": 3, "agreement": 0.6667, "kappa": 0.5}
    assert "the random calibration sample only (3 reviewed pairs of the uncertain queue left out" in result.output
    assert argilla_server.search_proxy.scripts_applied >= 13  # each response indexed through the proxy's script


def test_a_dataset_made_before_review_queues_gets_the_queue_metadata_added(review_project, run_cli, owner):
    from prefclean.export.argilla import ADDED_METADATA, Layout

    ws = owner.workspaces(name=WORKSPACE) or rg.Workspace(name=WORKSPACE, client=owner).create()
    old = Layout(n=2).settings()
    old.metadata = [m for m in old.metadata if m.name not in ADDED_METADATA]
    rg.Dataset(name="before_queues", workspace=ws, settings=old, client=owner).create()
    root = review_project("before_queues", calibration=1, min_submitted=3)
    result = run_cli("export", "argilla", cwd=root)
    assert result.exit_code == 0, result
    assert "1 calibration (1 of 1 in the dataset)" in result.output
    ds = dataset_or_none(owner, "before_queues")
    assert {"queue", "uncertainty"} <= {m.name for m in ds.settings.metadata}
    assert ds.settings.distribution.min_submitted == 3
    queues = sorted(r.metadata["queue"] for r in ds.records)
    assert queues == ["all", "all", "calibration"]
