"""`prefclean judges` asks each judge for one real token (a server that refuses every request is not "ok"), and
leaves nothing open behind it; a build whose every judge request failed is a failed model, not a success."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from judge_fixtures import REPO, build, judge_config, judge_project, judged

INCREMENTAL = """{{ config(materialized='incremental', unique_key='id') }}
select id, {{ judge('instruction', 'generations', judge='fake') }} as j from {{ source('pairs') }}
{% if is_incremental() %} where id not in (select id from {{ this }} where j.error is null) {% endif %}
"""
ROWS = [{"id": i, "instruction": f"question {i}", "generations": [f"a {i} [[rate=5]]", f"b {i} [[rate=1]]"]}
        for i in range(4)]


def judges_command(root) -> subprocess.CompletedProcess:
    """In a process of its own: aiohttp's unclosed-session warnings are printed when the interpreter exits."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "prefclean.cli", "judges", "--project-dir", str(root)],
                          capture_output=True, text=True, timeout=120, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_judges_sends_a_one_token_completion_and_reports_a_working_judge(make_project, fake_judge):
    root = judge_project(make_project, fake_judge, ROWS)
    listing = judges_command(root)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert f"ok: {fake_judge.url} answers" in listing.stdout
    assert fake_judge.stats()["completions"] == 1


def test_judges_calls_a_server_that_refuses_every_request_unavailable(make_project, fake_judge):
    fake_judge.control(fail_first_n=10_000, fail_status=400)
    root = judge_project(make_project, fake_judge, ROWS)
    listing = judges_command(root)
    assert listing.returncode == 1
    assert f"UNAVAILABLE: {fake_judge.url} refused the request (400): injected failure 400" in listing.stdout
    assert "ok:" not in listing.stdout


def test_judges_closes_its_connections_when_a_judge_is_unreachable(make_project, fake_judge):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    judges = {"gone": judge_config(fake_judge, base_url=url), "here": judge_config(fake_judge)}
    root = judge_project(make_project, fake_judge, ROWS, judges=judges)
    listing = judges_command(root)
    assert listing.returncode == 1
    assert f"UNAVAILABLE: cannot reach {url}" in listing.stdout and f"ok: {fake_judge.url} answers" in listing.stdout
    assert "Unclosed" not in listing.stderr and "Traceback" not in listing.stderr, listing.stderr


def test_a_build_whose_every_judge_request_failed_fails_the_model(make_project, run_cli, fake_judge):
    root = judge_project(make_project, fake_judge, ROWS)
    build(run_cli, root)
    fake_judge.reset()
    fake_judge.control(fail_first_n=10_000, fail_status=400)
    result, _ = build(run_cli, root, "--refresh-judgments", ok=False)
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if " ERROR table judged" in line]
    assert "judge 'fake': every request failed (4 of 4), e.g." in line and "refused the request (400)" in line
    assert fake_judge.stats()["requests"] == 4  # a 400 is not retried
    assert all(r["j"]["error"] is None for r in judged(root))  # the previous table stands
    again, _ = build(run_cli, root, "--refresh-judgments", ok=False)  # still refused: still a failed model
    assert again.exit_code == 1 and "every request failed (4 of 4)" in again.output


def test_a_judge_whose_every_answer_is_unreadable_fails_the_model(make_project, run_cli, fake_judge):
    # a 200 with garbage in it judges nothing either: before, exit 0 with every pair judge_failed (an empty export)
    root = judge_project(make_project, fake_judge, ROWS)
    build(run_cli, root)
    fake_judge.reset()
    fake_judge.control(garbage_first_n=10_000)
    result, _ = build(run_cli, root, "--refresh-judgments", ok=False)
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if " ERROR table judged" in line]
    assert "judge 'fake': every request failed (4 of 4), e.g. unparseable answer" in line
    assert all(r["j"]["error"] is None for r in judged(root))  # the previous table stands
    fake_judge.control(garbage_first_n=0)
    build(run_cli, root)  # readable again: judged, not taken for rows that keep failing
    assert [r["j"]["ratings"] for r in judged(root)] == [[5, 1]] * 4


def test_a_judge_that_never_answered_fails_every_build_until_it_does(make_project, run_cli, fake_judge):
    fake_judge.control(fail_first_n=8, fail_status=400)
    root = judge_project(make_project, fake_judge, ROWS, models={"judged": INCREMENTAL})
    for _ in range(2):  # the second build asks for the same rows: they failed because the judge did
        result, _ = build(run_cli, root, ok=False)
        assert result.exit_code == 1 and "every request failed (4 of 4)" in result.output
    build(run_cli, root)  # the server answers again
    assert [r["j"]["ratings"] for r in judged(root)] == [[5, 1]] * 4


def test_a_build_where_some_requests_fail_marks_only_those_rows_and_keeps_doing_so(make_project, run_cli, fake_judge):
    fake_judge.control(fail_if_contains="question 2\n", fail_status=400)
    root = judge_project(make_project, fake_judge, ROWS, models={"judged": INCREMENTAL})
    build(run_cli, root)
    errors = {r["id"]: r["j"]["error"] for r in judged(root)}
    assert [i for i, e in errors.items() if e] == [2] and "refused the request (400)" in errors[2]
    fake_judge.reset()
    fake_judge.control(fail_if_contains="question 2\n", fail_status=400)
    result, _ = build(run_cli, root)  # only the failed row is asked again, and refused again: not a broken judge
    assert fake_judge.stats()["requests"] == 1
    assert "judge fake: the 1 rows that failed in an earlier build failed again, e.g." in result.output
    assert [r["id"] for r in judged(root) if r["j"]["error"]] == [2]
