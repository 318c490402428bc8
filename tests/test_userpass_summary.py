"""A new user's pass over issue 15/18 features: what the run summary reports must match the audit table."""

from __future__ import annotations

import pytest
import yaml

from judge_fixtures import build, copy_example, summary_json


def _set_judge(root, **settings) -> None:
    path = root / "prefclean.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["judges"]["fake"].update(settings)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def test_the_position_bias_check_counts_only_pairs_whose_both_passes_were_answered(tmp_path, fake_judge, run_cli,
                                                                                  query):
    root = copy_example(tmp_path, fake_judge)
    _set_judge(root, budget={"max_requests": 30})
    out, _ = build(run_cli, root)
    both = query(root, "select count(*) from judged_pairs where list_bool_and(list_transform("
                       "judgments || judgments_reversed, lambda j: j.error is null))")[0][0]
    assert 0 < both < 52  # the budget left most pairs unsent
    pb = summary_json(root)["position_bias"]
    assert pb["checked"] == both, pb
    assert f"of {both} swapped pairs" in out.output
    # most pairs are dropped only because they were not sent: the drop warning says the next build judges them
    s = summary_json(root)
    assert s["drop_warning"]["not_judged_yet"] == s["not_judged_budget"] == 52 - both
    assert f"; {52 - both} of them are only not judged yet (budget, a pending batch): the next build" in out.output


@pytest.mark.parametrize("settings, message", [
    ({"max_requests": 3}, "unknown key `judges.fake.max_requests` for the openai engine; did you mean "
                          "`budget.max_requests`?"),
    ({"margin": 1}, "unknown key `judges.fake.margin` for the openai engine; did you mean `escalate.margin`?"),
    ({"price": {"input_per_million": 1.0}}, "`judges.fake.price.output_per_million` must be USD per million "
                                            "completion tokens, got nothing"),
    ({"price": {"input_per_million": 1.0, "output_per_million": 2.0, "batch_discount": 0.5}},
     "`judges.fake.price.batch_discount` applies only to batch engines (openai-batch)"),
    ({"structured_output": "json_objet"}, "`judges.fake.structured_output` must be true, false, json_schema or "
                                          "json_object, got 'json_objet'; did you mean 'json_object'?"),
])
def test_a_cost_or_output_key_in_the_wrong_place_half_given_or_misspelled_is_one_line_naming_it(tmp_path, fake_judge, run_cli, settings,
                                                                         message):
    root = copy_example(tmp_path, fake_judge)
    _set_judge(root, **settings)
    result = run_cli("plan", "--project-dir", root)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.fixture
def batch_server():
    from servers.fake_batch import FakeBatch

    with FakeBatch() as server:
        yield server


def test_no_wait_leaves_the_batch_alone_after_its_model_and_counts_pending_pairs_as_no_failures(
        tmp_path, fake_judge, batch_server, run_cli, query):
    rows = [{"system": "", "instruction": f"q{i}", "chosen": f"good {i} [[rate=5]]", "rejected": f"bad {i} [[rate=2]]"}
            for i in range(4)]
    root = copy_example(tmp_path, fake_judge, rows=rows)
    path = root / "prefclean.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["judges"]["fake"] = {"engine": "openai-batch", "base_url": batch_server.url, "model": "fake-judge",
                                "poll_seconds": 0.05, "timeout": 10}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    out, _ = build(run_cli, root, "--no-wait")
    # the models after judged_pairs never asked the judge: none of them looked at the batch (each look moves the
    # fake batch on; the third would have collected it and rebuilt cleaned_rows with judged_pairs' counters)
    assert batch_server.stats()["gets"] == 1
    assert "-8 rows" not in out.output and out.output.count("8 rows not judged: batch pending") == 1
    assert dict(query(root, "select reason, count(*) from pair_decisions group by 1")) == {"batch_pending": 4}
    assert summary_json(root)["judge_failures"] == 0 and "judge failures: 0" in out.output
    build(run_cli, root)  # the next build collects and fills every pair
    assert "batch_pending" not in dict(query(root, "select reason, count(*) from pair_decisions group by 1"))


def test_batch_import_of_a_requests_file_or_a_damaged_line_is_one_line_naming_the_line(tmp_path, fake_judge,
                                                                                      batch_server, run_cli):
    rows = [{"system": "", "instruction": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(2)]
    root = copy_example(tmp_path, fake_judge, rows=rows)
    path = root / "prefclean.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["judges"]["fake"] = {"engine": "openai-batch", "base_url": batch_server.url, "model": "fake-judge"}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    requests = tmp_path / "requests.jsonl"
    assert run_cli("batch", "export", "--project-dir", root, "-o", requests).exit_code == 0
    assert len(requests.read_text().splitlines()) == 4
    result = run_cli("batch", "import", requests, "--project-dir", root)  # the requests, not their results
    assert result.exit_code == 2, result.output
    assert f"{requests}: line 1 is a request line (method, url, body), not a result" in result.output
    damaged = tmp_path / "results.jsonl"
    damaged.write_text('{"custom_id": "a", "response": null, "error": null}\n{"custom_id": "b", "resp\n')
    result = run_cli("batch", "import", damaged, "--project-dir", root)
    assert result.exit_code == 2 and f"{damaged}: line 2 is not JSON" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_plan_calls_a_stronger_judge_an_escalation_only_when_the_judge_escalating_to_it_is_asked(
        tmp_path, fake_judge, run_cli):
    import json

    from judge_fixtures import judge_config

    rows = [{"system": "", "instruction": f"q{i}", "chosen": f"good {i} [[rate=4]]", "rejected": f"bad {i} [[rate=3]]"}
            for i in range(3)]
    root = copy_example(tmp_path, fake_judge, rows=rows, vars={"check_position_bias": False},
                        extra_judges={"big": judge_config(fake_judge, model="big")})
    _set_judge(root, escalate={"to": "big", "margin": 1})
    plan = json.loads(run_cli("plan", "--project-dir", root, "--json").output)
    assert {j["name"]: j["escalated_from"] for j in plan["judges"]} == {"fake": None, "big": "fake"}
    # the panel is big alone: fake is never asked, so big judges every pair itself
    plan = json.loads(run_cli("plan", "--project-dir", root, "--json", "--vars", "judges: [big]").output)
    assert [(j["name"], j["escalated_from"], j["requests"]) for j in plan["judges"]] == [("big", None, 3)]


def test_a_tokenizer_path_that_is_no_file_is_one_line_for_every_command_not_only_plan(tmp_path, fake_judge, run_cli):
    root = copy_example(tmp_path, fake_judge)
    _set_judge(root, tokenizer="nothere/tokenizer.json")
    for command in ("plan", "build"):
        result = run_cli(command, "--project-dir", root)
        assert result.exit_code == 2, result.output
        assert f"`judges.fake.tokenizer`: no file {root.resolve() / 'nothere/tokenizer.json'}" in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_a_plan_whose_judging_model_fails_names_the_error_and_does_not_say_there_is_no_judge_call(
        tmp_path, fake_judge, run_cli):
    root = copy_example(tmp_path, fake_judge)
    (root / "models" / "judged_pairs.sql").write_text(
        "select *, {{ judge('instruction', 'generations') }} as j from {{ ref('shuffled_pairs') }} "
        "where no_such_column = 1\n", encoding="utf-8")
    result = run_cli("plan", "--project-dir", root, "--select", "+judged_pairs")
    assert result.exit_code == 1, result.output
    assert "error in judged_pairs" in result.output and "no judge call" not in result.output


@pytest.mark.parametrize("command", [("plan",), ("build",), ("batch", "export", "-o")])
def test_a_misspelled_judge_option_is_one_line_before_any_model_builds(tmp_path, fake_judge, run_cli, command):
    root = copy_example(tmp_path, fake_judge)
    if command[-1] == "-o":
        command = (*command, tmp_path / "requests.jsonl")
    result = run_cli(*command, "--project-dir", root, "--judge", "fak")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: --judge: no judge named 'fak' in prefclean.yml; did you mean 'fake'?"
    assert not (root / "target" / "prefclean.duckdb").exists() and fake_judge.stats()["requests"] == 0
    assert not (tmp_path / "requests.jsonl").exists()  # batch export makes no output file either


def test_output_piped_into_a_reader_that_left_stops_quietly_not_as_an_internal_error(tmp_path, fake_judge):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = copy_example(tmp_path, fake_judge)
    script = Path(sys.executable).with_name("prefclean")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from prefclean.cli import main; main()"]
    read, write = os.pipe()
    os.close(read)  # `prefclean plan | head -1` once head has exited
    try:
        done = subprocess.run([*cmd, "plan", "--project-dir", str(root)], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=300)
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == "", done.stderr


def test_a_plan_with_nothing_to_time_it_by_says_its_time_is_unknown(tmp_path, fake_judge, run_cli):
    root = copy_example(tmp_path, fake_judge)
    result = run_cli("plan", "--project-dir", root)
    assert "time unknown (no latency seen yet, no requests_per_minute or tokens_per_minute)" in result.output
    _set_judge(root, requests_per_minute=60)
    assert "~104s (requests_per_minute)" in run_cli("plan", "--project-dir", root).output
