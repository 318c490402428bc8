"""Cost control, the gaps a user pass found (issue 15): budgets count prompts as `plan` counts them and are
spent to their end, `plan --max-cost` says what a cap lets through and the build stops there, `batch import`
logs what it spent, a wrong var is named by `plan` as by `build` before anything is paid for, and `plan`'s
errors name the user's files, not the throwaway copy it builds on. Counts are the fake judge's own."""

from __future__ import annotations

import json

import pytest

from judge_fixtures import copy_example

PAIRS = [{"system": "", "instruction": f"question {i}", "chosen": f"good {i} [[rate=5]]",
          "rejected": f"bad {i} [[rate=1]]"} for i in range(3)]


@pytest.mark.parametrize("check", [True, False, "uncertain"])
@pytest.mark.parametrize("margin, says", [("one", "bias_check_margin must be a number"),
                                          (-1, "bias_check_margin must be 0 or more")])
def test_a_bad_bias_check_margin_is_an_error_whatever_the_bias_check_mode(tmp_path, run_cli, fake_judge, check,
                                                                          margin, says):
    root = copy_example(tmp_path, fake_judge, rows=PAIRS, vars={"check_position_bias": check,
                                                                "bias_check_margin": margin})
    for command in ("plan", "build"):
        result = run_cli(command, "--project-dir", root)
        assert result.exit_code == 2 and says in result.output, (command, result.output)
        assert "set var 'bias_check_margin'" in result.output and "Traceback" not in result.output
    assert fake_judge.stats()["requests"] == 0


def test_the_examples_margin_beside_a_full_bias_check_is_no_error(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=PAIRS)  # the example's own vars: true, margin 1
    result = run_cli("plan", "--project-dir", root, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["judges"][0]["requests"] == 2 * len(PAIRS)


PRICE_IN = {"input_per_million": 1000.0, "output_per_million": 0}  # answers free: the prompt decides what fits


def tokenized_project(tmp_path, fake_judge, **settings):
    """20 requests whose prompts the judge's tokenizer counts at ~4x the four-characters estimate (a run of x's
    is a token each for a tokenizer trained on other text)."""
    from test_cost import judge_project_for
    from test_tokenizer_json import train_tokenizer

    pytest.importorskip("tokenizers")
    rows = [{"id": i, "instruction": f"q{i} " + "x" * 400, "generations": [f"a{i}", f"b{i}"]} for i in range(20)]
    root = judge_project_for(tmp_path, fake_judge, rows, price=PRICE_IN, max_tokens=16, concurrency=4,
                             tokenizer="tok/tokenizer.json", **settings)
    train_tokenizer(root / "tok")
    return root


def plan_json(run_cli, root, *args) -> dict:
    result = run_cli("plan", "--project-dir", root, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _without_tokenizer(root):
    import yaml

    path = root / "prefclean.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    del config["judges"]["fake"]["tokenizer"]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def test_plan_max_cost_says_how_many_requests_fit_and_the_build_sends_exactly_those(tmp_path, fake_judge, run_cli,
                                                                                     query):
    root = tokenized_project(tmp_path, fake_judge)
    other = tokenized_project(tmp_path / "estimated", fake_judge)
    _without_tokenizer(other)
    (j,) = plan_json(run_cli, root)["judges"]
    (e,) = plan_json(run_cli, other)["judges"]
    assert (j["requests"], j["token_count"], j["within_budget"]) == (20, "exact", None)  # no limit: nothing to fit
    cap = 0.4 * j["cost_usd"]
    assert e["token_count"] == "estimated" and e["cost_usd"] < cap  # estimated, all 20 would fit

    plan = plan_json(run_cli, root, "--max-cost", f"{cap:.6f}")
    (p,) = plan["judges"]
    # the keys are all there, with the new ones beside them
    assert {"name", "requests", "cached", "prompt_tokens", "completion_tokens", "cost_usd", "seconds",
            "token_count", "within_budget"} <= set(p)
    assert plan["max_cost_usd"] == pytest.approx(cap, rel=1e-4) and plan["stopped_by_max_cost"] == ["fake"]
    fit = p["within_budget"]
    assert 0 < fit["requests"] < 20 and fit["requests_at_least"] == fit["requests"]  # answers cost nothing here
    assert fit["stopped_by"].startswith("--max-cost") and fit["cost_usd"] <= cap
    text = run_cli("plan", "--project-dir", root, "--max-cost", f"{cap:.6f}").output
    assert f"within budget: {fit['requests']} of 20 requests" in text
    assert f"{fit['requests']} of 20 requests fit; it stops judge fake" in text
    assert "each answer taken at max_tokens, none of this judge's being cached yet" in text  # says why it is the most
    assert fake_judge.stats()["requests"] == 0

    # The server reports no usage, so the build spends what it counts: counted as the plan counts, it stops at
    # the same request (reserving four characters a token, it sent all 20). Four in flight at a time, so the
    # first reservations hold a bound and are counted exactly once one does not fit.
    fake_judge.control(omit_usage=True, latency_ms=30)
    result = run_cli("build", "--project-dir", root, "--max-cost", f"{cap:.6f}")
    assert result.exit_code == 0, result.output
    assert fake_judge.stats()["requests"] == fit["requests"], result.output
    logged = query(root / "target" / "judgments.duckdb", "select count(*), sum(cost_usd) from calls")[0]
    assert logged[0] == fit["requests"] and logged[1] == pytest.approx(fit["cost_usd"])
    # the server said nothing: the build's line gives the prompt tokens as counted (and priced)
    prompt = round(fit["cost_usd"] / PRICE_IN["input_per_million"] * 1e6)
    assert f"tokens {prompt}+0" in result.output, result.output


def test_batch_import_logs_each_answers_usage_and_cost_and_says_what_it_spent(tmp_path, fake_judge, run_cli, query):
    from servers.fake_judge import DEFAULTS, answer_for
    from test_batch_cost import PRICE, billed, set_judge

    root = copy_example(tmp_path, fake_judge, rows=PAIRS, vars={"check_position_bias": False})
    set_judge(root, engine="openai-batch", base_url="http://127.0.0.1:9/v1", model="fake-judge", price=PRICE)
    requests = tmp_path / "requests.jsonl"
    assert run_cli("batch", "export", "--project-dir", root, "-o", requests).exit_code == 0
    lines = [json.loads(line) for line in requests.read_text().splitlines()]
    results = tmp_path / "results.jsonl"  # as `vllm run-batch` writes them: line i used 100+i prompt, 7 completion
    with open(results, "w") as f:
        for i, line in enumerate(lines):
            prompt = "\n".join(m["content"] for m in line["body"]["messages"])
            body = {"model": "fake-judge", "choices": [{"message": {"content": answer_for(prompt, "x", dict(DEFAULTS))}}],
                    "usage": {"prompt_tokens": 100 + i, "completion_tokens": 7}}
            f.write(json.dumps({"id": f"r{i}", "custom_id": line["custom_id"], "error": None,
                                "response": {"status_code": 200, "body": body}}) + "\n")
        f.write(json.dumps({"id": "e", "custom_id": lines[0]["custom_id"] + "x", "response": None,
                            "error": {"message": "not ours"}}) + "\n")
    result = run_cli("batch", "import", results, "--project-dir", root)
    assert result.exit_code == 0, result.output
    expected = sum(billed(100 + i, 7) for i in range(len(lines)))  # at the price less batch_discount
    prompt_tokens = sum(100 + i for i in range(len(lines)))
    assert (f"stored 3 judgments, 0 failed, 1 line with an unknown custom_id; judge fake: 3 answered, tokens "
            f"{prompt_tokens}+21, ${expected:.4f}") in result.output
    logged = query(root / "target" / "judgments.duckdb", "select count(*), sum(prompt_tokens), sum(completion_tokens), "
                                                          "sum(cost_usd), any_value(model) from calls")[0]
    assert logged[:3] == (3, prompt_tokens, 21) and logged[3] == pytest.approx(expected) and logged[4] == "fake-judge"

    # the build that uses them prices what the cache saved from the imported calls
    assert run_cli("build", "--project-dir", root).exit_code == 0
    saved = json.loads((root / "target" / "summary.json").read_text())["this_run_judges"]["fake"]["saved_by_cache"]
    assert saved == {"rows": 3, "cost_usd": pytest.approx(expected)}


def test_a_failing_models_error_in_the_plan_names_its_file_and_line_not_the_plans_copy(tmp_path, fake_judge,
                                                                                         run_cli):
    root = copy_example(tmp_path, fake_judge, rows=PAIRS)
    path = root / "models" / "judged_pairs.sql"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("from "))  # a line without Jinja
    lines.insert(at, "  , no_such_column")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("plan", "--project-dir", root)
    assert result.exit_code == 1
    assert f"(models/judged_pairs.sql, line {at + 1})" in result.output, result.output
    assert "prefclean-plan-" not in result.output and "compiled SQL:" not in result.output
    # a line that Jinja wrote is named in the compiled SQL, which `prefclean compile` makes
    lines[at] = "  , {{ 'no_such' }}_column"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("plan", "--project-dir", root)
    assert "(models/judged_pairs.sql; line " in result.output and "prefclean compile --select judged_pairs" in \
        result.output and "prefclean-plan-" not in result.output, result.output


@pytest.mark.parametrize("mistake, says", [
    ({"vars": {"max_drop_rate": 2}}, "var 'max_drop_rate' is 2; it must be a share between 0 and 1"),
    ({"models/schema.yml": "version: 2\nmodels:\n  - name: judged_pairs\n    columns:\n      - name: pair_id\n"
                           "        data_tests: [not_nul]\n"}, "unknown test 'not_nul'"),
])
def test_plan_reports_what_a_build_would_refuse_before_sending(tmp_path, fake_judge, run_cli, mistake, says):
    import yaml

    root = copy_example(tmp_path, fake_judge, rows=PAIRS)
    if "vars" in mistake:
        config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
        config["vars"].update(mistake["vars"])
        (root / "prefclean.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    else:
        for rel, text in mistake.items():
            (root / rel).write_text(text, encoding="utf-8")
    for command in ("plan", "build"):
        result = run_cli(command, "--project-dir", root)
        assert result.exit_code == 2 and says in result.output, (command, result.output)
    assert fake_judge.stats()["requests"] == 0


def test_plan_shows_the_warnings_a_build_would_give_before_it_sends(tmp_path, fake_judge, run_cli):
    root = copy_example(tmp_path, fake_judge, rows=PAIRS, vars={"min_margn": 2})
    result = run_cli("plan", "--project-dir", root, "--max-cost", "1")
    assert result.exit_code == 0, result.output
    assert "WARNING var 'min_margn' (did you mean 'min_margin'?)" in result.output
    assert "WARNING --max-cost: judge fake has no `price:`" in result.output
    warnings = json.loads(run_cli("plan", "--project-dir", root, "--json").output)["warnings"]
    assert any("min_margn" in w for w in warnings)


def test_a_budget_is_spent_to_its_end_not_stopped_by_the_reservations_of_requests_in_flight(tmp_path, fake_judge,
                                                                                            run_cli):
    """Each request in flight holds max_tokens for its answer; the answers use a few. A request that does not fit
    beside them waits for them to be answered instead of ending the judge's build."""
    from test_cost import judge_project_for

    rows = [{"id": i, "instruction": f"q{i}", "generations": [f"a{i}", f"b{i}"]} for i in range(60)]
    root = judge_project_for(tmp_path, fake_judge, rows, max_tokens=100, concurrency=8, budget={"max_tokens": 3000})
    fake_judge.control(latency_ms=20)
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 0, result.output
    stats = fake_judge.stats()
    used = stats["prompt_tokens"] + stats["completion_tokens"]
    most_per_request = max(stats["prompt_tokens"] // stats["requests"] + 2, 1) + 100  # a prompt and max_tokens
    assert used <= 3000 and 3000 - used < most_per_request, (stats["requests"], used)  # the next would not fit
    assert "budget reached (max_tokens 3000)" in result.output


def test_summary_costs_are_rounded_and_a_plan_with_nothing_to_send_says_nothing_of_budgets(tmp_path, fake_judge,
                                                                                           run_cli):
    import yaml

    rows = [dict(p, instruction=f"{p['instruction']} {k}") for k in range(4) for p in PAIRS]  # a sum of 24 costs
    root = copy_example(tmp_path, fake_judge, rows=rows)
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"]["fake"].update(price={"input_per_million": 0.15, "output_per_million": 0.6},
                                    budget={"max_cost_usd": 1})
    (root / "prefclean.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert run_cli("build", "--project-dir", root).exit_code == 0
    s = json.loads((root / "target" / "summary.json").read_text(encoding="utf-8"))
    for cost in (s["this_run"]["cost_usd"], s["this_run_judges"]["fake"]["stats"]["cost_usd"]):
        assert cost > 0 and cost == round(cost, 6)
    text = run_cli("plan", "--project-dir", root, "--full-refresh").output  # every row cached
    assert "-> 0 requests" in text and "within budget" not in text and "over its budget" not in text


def test_plan_refresh_judgments_counts_what_a_refreshing_build_sends_again(tmp_path, fake_judge, run_cli):
    root = copy_example(tmp_path, fake_judge, rows=PAIRS)
    assert run_cli("build", "--project-dir", root).exit_code == 0
    fake_judge.reset()
    assert plan_json(run_cli, root)["judges"] == []  # nothing left to judge
    (j,) = plan_json(run_cli, root, "--refresh-judgments")["judges"]
    assert (j["rows"], j["cached"], j["requests"]) == (2 * len(PAIRS), 0, 2 * len(PAIRS))
    assert run_cli("build", "--project-dir", root, "--refresh-judgments").exit_code == 0
    assert fake_judge.stats()["requests"] == j["requests"]


@pytest.mark.parametrize("command", ["build", "plan"])
@pytest.mark.parametrize("cap", ["nan", "NaN"])
def test_a_max_cost_that_is_not_a_number_of_usd_is_one_line_not_no_cap_at_all(tmp_path, fake_judge, run_cli,
                                                                                command, cap):
    # click's FloatRange(min=0) lets NaN through (every comparison with it is false): a cap that caps nothing
    root = copy_example(tmp_path, fake_judge, rows=[{"system": "", "instruction": "q", "chosen": "a", "rejected": "b"}])
    result = run_cli(command, "--project-dir", str(root), "--max-cost", cap)
    assert result.exit_code == 2, result.output
    assert "--max-cost" in result.output and "Traceback" not in result.output
    assert fake_judge.stats()["requests"] == 0


@pytest.mark.parametrize("cap", [float("nan"), -1, "5", True])
def test_the_apis_max_cost_is_checked_as_the_clis(tmp_path, fake_judge, cap):
    import prefclean
    from prefclean.errors import PrefcleanError

    root = copy_example(tmp_path, fake_judge, rows=[{"system": "", "instruction": "q", "chosen": "a", "rejected": "b"}])
    for call in (prefclean.build, prefclean.plan):
        with pytest.raises(PrefcleanError, match="max_cost"):
            call(root, max_cost=cap)
    assert fake_judge.stats()["requests"] == 0


@pytest.mark.llm
def test_plan_says_the_smoke_test_judges_ratings_mean_nothing_as_the_build_does(tmp_path, run_cli, make_project):
    rows = [{"id": 1, "instruction": "What is 2 + 2?", "generations": ["4", "5"]}]
    root = make_project(config={"name": "smoke", "sources": {"pairs": {"type": "inline", "rows": rows}}},
                        models={"judged": "{{ config(materialized='table') }}\nselect id, {{ judge('instruction', "
                                          "'generations') }} as j from {{ source('pairs') }}"})
    result = run_cli("plan", "--project-dir", root)
    assert result.exit_code == 0 and "WARNING smoke-test judge: a 135M-parameter model" in result.output, result.output
