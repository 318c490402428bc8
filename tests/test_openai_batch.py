"""The openai-batch engine against tests/servers/fake_batch.py, a loopback server implementing the documented
OpenAI Files + Batch endpoints (multipart upload with purpose=batch, batch objects with their statuses and
request_counts, output and error files): a build submits once and fills its rows, --no-wait leaves them pending
for the next build, a failed batch, an expired one and partial errors are resubmitted line by line, a build
killed between submit and collect submits nothing new when run again, and export/import for offline runners."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from judge_fixtures import build, judge_project, judged
from servers.fake_batch import FakeBatch

ROWS = [{"id": i, "instruction": f"question {i}", "generations": [f"good {i} [[rate=5]]", f"bad {i} [[rate=2]]"]}
        for i in range(5)]


@pytest.fixture(scope="module")
def _batch_server():
    with FakeBatch() as server:
        yield server


@pytest.fixture
def batch_server(_batch_server):
    _batch_server.reset()
    return _batch_server


def batch_judge(server, **settings) -> dict:
    return {"engine": "openai-batch", "base_url": server.url, "model": "fake-judge", "poll_seconds": 0.05,
            "timeout": 10, **settings}


def project(make_project, server, rows=ROWS, **settings):
    return judge_project(make_project, server, rows, judges={"fake": batch_judge(server, **settings)})


def errors(root) -> list:
    return [row["j"]["error"] for row in judged(root)]


def test_a_build_submits_one_batch_waits_and_fills_every_row(make_project, run_cli, batch_server):
    root = project(make_project, batch_server)
    result, _ = build(run_cli, root)
    stats = batch_server.stats()
    assert stats["batches_created"] == 1 and [u["lines"] for u in stats["uploads"]] == [5]
    assert list(stats["statuses"].values()) == ["completed"]
    rows = judged(root)
    assert [r["j"]["ratings"] for r in rows] == [[5, 2]] * 5 and all(r["j"]["error"] is None for r in rows)
    assert "judge fake (openai-batch fake-judge at" in result.output and "judged 5, failed 0, cached 0" in result.output
    # Everything is in the judgment cache now: a rebuild asks the provider nothing.
    batch_server.reset()
    result, _ = build(run_cli, root, "--full-refresh")
    assert batch_server.stats()["uploads"] == [] and batch_server.stats()["gets"] == 0
    assert "cached 5" in result.output


def test_no_wait_leaves_rows_pending_and_the_next_build_collects_without_resubmitting(make_project, run_cli,
                                                                                     batch_server):
    batch_server.control(hold=True)
    root = project(make_project, batch_server)
    result, _ = build(run_cli, root, "--no-wait")
    assert batch_server.stats()["batches_created"] == 1
    assert errors(root) == ["not judged: batch pending"] * 5  # recorded, then submitted when the query was done
    assert "5 rows not judged: batch pending" in result.output
    # Still running: a second --no-wait build submits nothing and the rows stay pending, now naming their batch.
    build(run_cli, root, "--no-wait")
    assert batch_server.stats()["batches_created"] == 1 and len(batch_server.stats()["uploads"]) == 1
    [batch_id] = batch_server.stats()["statuses"]
    assert errors(root) == [f"not judged: batch pending ({batch_id})"] * 5
    batch_server.control(hold=False)
    build(run_cli, root, "--no-wait")  # collects what finished, still without waiting
    assert batch_server.stats()["batches_created"] == 1
    rows = judged(root)
    assert [r["j"]["ratings"] for r in rows] == [[5, 2]] * 5 and all(r["j"]["error"] is None for r in rows)


def test_wait_false_in_the_config_is_no_wait(make_project, run_cli, batch_server):
    batch_server.control(hold=True)
    root = project(make_project, batch_server, wait=False)
    build(run_cli, root)
    assert all(e.startswith("not judged: batch pending") for e in errors(root))


def test_a_failed_batch_fails_its_rows_and_the_next_build_resubmits_them(make_project, run_cli, batch_server):
    batch_server.control(fail_next_batches=1)
    root = project(make_project, batch_server)
    build(run_cli, root)
    assert all(e.startswith("batch batch-") and "failed: injected failure" in e for e in errors(root))
    build(run_cli, root)
    stats = batch_server.stats()
    assert stats["batches_created"] == 2 and [u["lines"] for u in stats["uploads"]] == [5, 5]
    assert all(e is None for e in errors(root))


def test_an_expired_batch_keeps_what_it_answered_and_resubmits_only_the_rest(make_project, run_cli, batch_server):
    batch_server.control(expire_next_batches=1, expire_after=2)
    root = project(make_project, batch_server)
    build(run_cli, root)
    failed = [e for e in errors(root) if e]
    assert len(failed) == 3 and all(e.startswith("batch_expired: ") for e in failed)
    build(run_cli, root)
    assert [u["lines"] for u in batch_server.stats()["uploads"]] == [5, 3]
    assert all(e is None for e in errors(root))


def test_partial_errors_in_the_error_file_fail_only_their_rows(make_project, run_cli, batch_server):
    batch_server.control(error_if_contains="question 3")
    root = project(make_project, batch_server)
    result, _ = build(run_cli, root)
    by_id = {r["id"]: r["j"] for r in judged(root)}
    assert by_id[3]["error"] == "the batch answered 500: injected server error"
    assert all(by_id[i]["error"] is None for i in (0, 1, 2, 4))
    assert "judged 4, failed 1" in result.output
    batch_server.control(error_if_contains=None)
    build(run_cli, root)
    assert [u["lines"] for u in batch_server.stats()["uploads"]] == [5, 1]
    assert all(e is None for e in errors(root))


def test_requests_are_split_at_the_files_request_and_byte_limits(make_project, run_cli, batch_server):
    root = project(make_project, batch_server, max_requests_per_file=2)
    build(run_cli, root)
    assert [u["lines"] for u in batch_server.stats()["uploads"]] == [2, 2, 1]
    assert all(e is None for e in errors(root))
    batch_server.reset()
    # A limit under two lines' bytes: one line per file.
    root = project(make_project, batch_server, rows=ROWS[:3], max_bytes_per_file=1)
    build(run_cli, root)
    assert [u["lines"] for u in batch_server.stats()["uploads"]] == [1, 1, 1]


def test_a_build_killed_between_submit_and_collect_is_collected_by_the_next_without_resubmitting(
        make_project, batch_server):
    batch_server.control(hold=True)
    root = project(make_project, batch_server)
    env = {**os.environ, "NO_COLOR": "1", "PREFCLEAN_PROGRESS": "0"}
    child = subprocess.Popen([sys.executable, "-m", "prefclean.cli", "build", "--project-dir", str(root)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while batch_server.stats()["gets"] < 2:  # submitted, and waiting on it
            assert child.poll() is None and time.monotonic() < deadline, child.stdout.read().decode()
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    assert batch_server.stats()["batches_created"] == 1
    batch_server.control(hold=False)
    done = subprocess.run([sys.executable, "-m", "prefclean.cli", "build", "--project-dir", str(root)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    stats = batch_server.stats()
    assert stats["batches_created"] == 1 and len(stats["uploads"]) == 1
    assert [r["j"]["ratings"] for r in judged(root)] == [[5, 2]] * 5


def test_export_writes_the_request_lines_and_import_reads_their_answers_into_the_cache(make_project, run_cli,
                                                                                      batch_server, tmp_path):
    from servers.fake_judge import DEFAULTS, answer_for

    root = project(make_project, batch_server)
    out = tmp_path / "requests.jsonl"
    result = run_cli("batch", "export", "--project-dir", root, "-o", out)
    assert result.exit_code == 0, result
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5 and batch_server.stats()["uploads"] == []
    assert {line["url"] for line in lines} == {"/v1/chat/completions"} and all(line["method"] == "POST" for line in lines)
    # An offline runner answers them (as `vllm run-batch` writes its output file).
    answers = tmp_path / "results.jsonl"
    with open(answers, "w") as f:
        for i, line in enumerate(lines):
            prompt = "\n".join(m["content"] for m in line["body"]["messages"])
            body = {"model": "fake-judge", "choices": [{"message": {"content": answer_for(prompt, "x", dict(DEFAULTS))}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
            f.write(json.dumps({"id": f"r{i}", "custom_id": line["custom_id"], "error": None,
                                "response": {"status_code": 200, "request_id": f"q{i}", "body": body}}) + "\n")
        f.write(json.dumps({"id": "x", "custom_id": "not-ours", "response": None, "error": None}) + "\n")
    result = run_cli("batch", "import", answers, "--project-dir", root)
    assert result.exit_code == 0, result
    assert "stored 5 judgments, 0 failed, 1 line with an unknown custom_id" in result.output
    result, _ = build(run_cli, root)
    assert batch_server.stats()["uploads"] == [] and "cached 5" in result.output
    assert all(e is None for e in errors(root))


def test_the_reporter_sees_each_batchs_status_and_request_counts_while_waiting(make_project, batch_server):
    import prefclean
    from prefclean.events import BatchProgress

    batch_server.control(steps_before_done=3)
    root = project(make_project, batch_server)
    events = []
    result = prefclean.build(root, reporter=events.append)
    assert result.ok
    seen = [e for e in events if isinstance(e, BatchProgress)]
    assert {e.judge for e in seen} == {"fake"} and len({e.batch_id for e in seen}) == 1
    statuses = [e.status for e in seen]
    assert statuses[0] == "in_progress" and statuses.count("in_progress") >= 3 and statuses[-1] == "completed"
    assert (seen[-1].completed, seen[-1].failed, seen[-1].total) == (5, 0, 5)
    assert [j for m in result.models for j in m.judges][-1].stats.judged == 5


def test_judges_checks_the_batch_api_without_submitting_anything(make_project, run_cli, batch_server):
    root = project(make_project, batch_server)
    result = run_cli("judges", "--project-dir", root)
    assert result.exit_code == 0, result
    assert "the Batch API answers" in result.output
    assert batch_server.stats()["uploads"] == [] and batch_server.stats()["batches_created"] == 0


def test_a_busy_provider_is_retried_up_to_max_retries_and_the_batch_submitted_once(make_project, run_cli,
                                                                                   batch_server):
    batch_server.control(unavailable_next=4)  # 503 with Retry-After: 0 for the next four calls
    root = project(make_project, batch_server, max_retries=4)
    build(run_cli, root)
    stats = batch_server.stats()
    assert stats["unavailable"] == ["POST /v1/files"] * 4  # the upload, retried four times, then everything else
    assert stats["batches_created"] == 1 and len(stats["uploads"]) == 1
    assert [r["j"]["ratings"] for r in judged(root)] == [[5, 2]] * 5

    batch_server.reset()
    batch_server.control(unavailable_next=4)
    root = project(make_project, batch_server, max_retries=2)
    result, _ = build(run_cli, root, ok=False)
    assert result.exit_code == 1 and "could not submit a batch" in result.output and "(503)" in result.output
    assert batch_server.stats()["unavailable"] == ["POST /v1/files"] * 3 and batch_server.stats()["batches_created"] == 0
    build(run_cli, root)  # one 503 left: retried, then submitted
    assert batch_server.stats()["batches_created"] == 1 and all(e is None for e in errors(root))


def test_keys_a_batch_does_not_use_are_errors_naming_them(make_project, run_cli, batch_server):
    for key, value in (("requests_per_minute", 60), ("concurrency", 4), ("parse_retries", 1), ("send_grammar", True)):
        root = project(make_project, batch_server, **{key: value})
        result = run_cli("plan", "--project-dir", root)
        assert result.exit_code == 2 and f"judges.fake.{key}" in result.output, (key, result.output)


def test_a_waiting_build_submits_and_fills_the_requests_that_hang_on_a_batchs_answers(tmp_path, run_cli, batch_server):
    """The uncertain bias check's swapped pass depends on the first verdicts, so it is met only once the first
    batch is collected: the same build submits it, waits and fills it (it was left 'batch pending' in no batch
    at all, for the next build to submit)."""
    import yaml

    from judge_fixtures import copy_example, summary_json

    def pair(name, chosen, rejected):
        return {"system": "", "instruction": f"question {name}", "chosen": f"chosen answer {name} [[rate={chosen}]]",
                "rejected": f"rejected answer {name} [[rate={rejected}]]"}

    root = copy_example(tmp_path, batch_server, rows=[pair("clear", 5, 1), pair("close", 4, 3), pair("even", 3, 3)],
                        vars={"check_position_bias": "uncertain", "bias_check_margin": 1})
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"]["fake"] = batch_judge(batch_server)
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    build(run_cli, root)
    assert [u["lines"] for u in batch_server.stats()["uploads"]] == [3, 1]  # the first passes, then close swapped
    rows = {r["instruction"].split()[-1]: r for r in judged(root, "select instruction, decision, reason, bias_check "
                                                                  "from pair_decisions")}
    assert {k: (r["decision"], r["reason"], r["bias_check"]) for k, r in rows.items()} == {
        "clear": ("keep", "judge_agrees", "clear"), "close": ("keep", "judge_agrees", "swapped"),
        "even": ("drop", "tie", "would_drop")}
    assert summary_json(root)["position_bias"]["checked"] == 1
    batch_server.reset()
    build(run_cli, root)
    assert batch_server.stats()["uploads"] == []
