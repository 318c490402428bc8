"""Errors no retry can fix stop judging at once and fail the model with one line; its old version stays."""

from __future__ import annotations

import socket

import pytest
from judge_fixtures import build, judge_config, judge_project, judged


def rows(n):
    return [{"id": i, "instruction": f"question {i}", "generations": [f"a {i} [[rate=5]]", f"b {i} [[rate=1]]"]}
            for i in range(n)]


def error_line(result) -> str:
    [line] = [line for line in result.output.splitlines() if " ERROR table judged" in line]
    return line


@pytest.mark.parametrize("status, words", [(401, "rejected the request (401): set a valid key in $OPENAI_API_KEY"),
                                           (404, "has no model 'fake-judge'")])
def test_a_rejected_key_or_unknown_model_fails_the_model_after_one_request(make_project, run_cli, fake_judge,
                                                                           status, words):
    root = judge_project(make_project, fake_judge, rows(3))
    build(run_cli, root)
    fake_judge.reset()
    fake_judge.control(fail_first_n=10_000, fail_status=status)
    (root / "models" / "judged.sql").write_text((root / "models" / "judged.sql").read_text() + " where id >= 0")
    result, _ = build(run_cli, root, "--refresh-judgments", ok=False)
    assert result.exit_code == 1 and words in error_line(result) and "Traceback" not in result.output
    assert fake_judge.stats()["requests"] <= 8  # the ones already in flight, then nothing more
    assert len(judged(root)) == 3  # the previous table stands


def test_a_server_that_never_answers_is_a_wrong_url_not_a_thousand_failed_rows(make_project, run_cli, fake_judge):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    judges = {"fake": judge_config(fake_judge, base_url=f"http://127.0.0.1:{port}/v1", max_retries=1,
                                   concurrency=4)}
    root = judge_project(make_project, fake_judge, rows(300), judges=judges)
    result, seconds = build(run_cli, root, ok=False)
    assert f"cannot reach http://127.0.0.1:{port}/v1" in error_line(result)
    assert seconds < 30

