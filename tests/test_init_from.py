"""`prefclean init --from`: a project over the user's own file that builds as it is and writes the cleaned rows
back in the same format. Round trips on the real rows in ../shared/data, judged by the loopback fake judge."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from judge_fixtures import build, judge_config
from test_formats import REAL_FILES, msg, shared_file

DPO_FILES = dict(REAL_FILES)  # every preference file in ../shared/data
SWAPS = {"hh_rlhf": ("chosen", "rejected"), "sharegpt": ("chosen", "rejected"), "orca": ("chosen", "rejected"),
         "llamafactory_messages": ("chosen_messages", "rejected_messages"),
         "openai_dpo": ("preferred_output", "non_preferred_output"), "trl_conversational": ("chosen", "rejected"),
         "trl_standard": ("chosen", "rejected")}


def use_fake_judge(root: Path, server, **vars) -> None:
    """Point a scaffolded project at the fake judge: position 1 rated 5, position 2 rated 2, so about half the
    pairs are kept and half flipped (allow_flip), each pair judged once."""
    server.control(position_ratings=[5, 2])
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"] = {"fake": judge_config(server)}
    config["vars"].update({"judges": ["fake"], "check_position_bias": False, "allow_flip": True, **vars})
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def decisions(root: Path) -> list[tuple[int, str | None, str | None]]:
    """(source_row, decision, excluded_reason) for every source row, in source order."""
    con = duckdb.connect(str(root / "target/prefclean.duckdb"), read_only=True)
    try:
        return con.execute("select r.source_row, d.decision, r.excluded_reason from stg_rows r "
                           "left join pair_decisions d using (pair_id) order by r.source_row").fetchall()
    finally:
        con.close()


def swapped(row: dict, columns: tuple[str, str]) -> dict:
    a, b = columns
    return {**row, a: row[b], b: row[a]}


def check_round_trip(root: Path, inputs: list[dict], cleaned: list[dict], fmt: str, *,
                     lines: tuple[list[str], list[str]] | None = None) -> tuple[int, int]:
    """Every kept row is its input row exactly, every flipped one with its responses exchanged, in order; every
    input row is judged or excluded with a reason. `lines`: (input lines, output lines) of JSONL files: a kept
    row's line is its input line byte for byte, a flipped row's has the input's keys in the same order.
    Returns (kept, flipped)."""
    verdicts = decisions(root)
    assert len(verdicts) == len(inputs)
    assert all(d is not None or r is not None for _, d, r in verdicts)  # accounted for
    expected = [inputs[i - 1] if d == "keep" else swapped(inputs[i - 1], SWAPS[fmt])
                for i, d, _ in verdicts if d in ("keep", "flip")]
    assert cleaned == expected
    if lines is not None:
        source_lines, out_lines = lines
        written = iter(out_lines)
        for i, d, _ in verdicts:
            if d == "keep":
                assert next(written) == source_lines[i - 1].rstrip()
            elif d == "flip":
                assert list(json.loads(next(written))) == list(json.loads(source_lines[i - 1]))  # same key order
        assert next(written, None) is None
    summary = json.loads((root / "target/summary.json").read_text(encoding="utf-8"))
    assert (summary["rows_in"], summary["unaccounted"]) == (len(inputs), 0)
    assert summary["excluded"] == {r: sum(1 for *_, x in verdicts if x == r) for r in {x for *_, x in verdicts} - {None}}
    kept = sum(1 for _, d, _ in verdicts if d == "keep")
    return kept, len(expected) - kept


@pytest.mark.parametrize("name", sorted(DPO_FILES))
def test_init_from_a_real_file_builds_and_writes_kept_rows_exactly_as_read(name, tmp_path, run_cli, fake_judge):
    source = shared_file(name)
    result = run_cli("init", "proj", "--from", source, cwd=tmp_path)
    assert result.exit_code == 0, result
    assert f"format: {DPO_FILES[name]} (detected, dpo)" in result.output
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    build(run_cli, root)
    stem = source.stem.replace(".", "_").replace("-", "_").lower()
    out = root / f"target/exports/{stem}_cleaned.jsonl"
    source_lines = source.read_text(encoding="utf-8").splitlines()
    out_lines = out.read_text(encoding="utf-8").splitlines()
    inputs = [json.loads(line) for line in source_lines]
    cleaned = [json.loads(line) for line in out_lines]
    kept, flipped = check_round_trip(root, inputs, cleaned, DPO_FILES[name], lines=(source_lines, out_lines))
    assert kept > 0 and flipped > 0
    assert (root / "prefclean.yml").read_text(encoding="utf-8").count(str(source)) == 1  # read in place


def test_a_parquet_source_comes_out_as_parquet_with_the_same_schema(tmp_path, run_cli, fake_judge):
    source = tmp_path / "pairs.parquet"
    con = duckdb.connect()
    con.execute(f"copy (select * from read_json('{shared_file('msfoundry_orca_dpo_validation.openai_dpo.jsonl')}')) "
                f"to '{source}' (format parquet)")
    assert run_cli("init", "proj", "--from", source, cwd=tmp_path).exit_code == 0
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    build(run_cli, root)
    out = root / "target/exports/pairs_cleaned.parquet"
    assert con.execute(f"describe select * from '{out}'").fetchall() == \
        con.execute(f"describe select * from '{source}'").fetchall()
    read = lambda path: [json.loads(r[0]) for r in con.execute(f"select to_json(t) from '{path}' t").fetchall()]  # noqa: E731
    check_round_trip(root, read(source), read(out), "openai_dpo")


def test_with_judgments_adds_ratings_decision_and_reason(tmp_path, run_cli, fake_judge):
    rows = [{"prompt": [msg("user", f"q{i}")], "chosen": [msg("assistant", f"good {i}")],
             "rejected": [msg("assistant", f"bad {i}")]} for i in range(6)]
    source = tmp_path / "conv.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_cli("init", "proj", "--from", source, cwd=tmp_path)
    assert "format: trl_conversational (detected, dpo)" in result.output, result
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["exports"]["cleaned"]["with_judgments"] = True
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    build(run_cli, root)
    cleaned = [json.loads(line) for line in (root / "target/exports/conv_cleaned.jsonl").read_text().splitlines()]
    assert len(cleaned) == 6
    for row in cleaned:
        assert set(row) == {"prompt", "chosen", "rejected", "chosen_rating", "rejected_rating", "decision", "reason"}
        assert row["chosen_rating"] == 5 and row["rejected_rating"] == 2  # after a flip, the ratings follow
        assert row["decision"] in ("keep", "flip")


def test_rows_that_do_not_fit_are_excluded_with_a_reason_and_the_rest_are_cleaned(tmp_path, run_cli, fake_judge):
    prompt = "\n\nHuman: 2+2?"
    rows = [{"chosen": prompt + "\n\nAssistant: 4", "rejected": prompt + "\n\nAssistant: 5"},
            {"chosen": prompt, "rejected": prompt},
            {"chosen": prompt + "\n\nAssistant: 4\n\nHuman: ok?", "rejected": prompt + "\n\nAssistant: 5\n\nHuman: ok?"}]
    source = tmp_path / "hh.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert run_cli("init", "proj", "--from", source, cwd=tmp_path).exit_code == 0
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    build(run_cli, root)
    assert [r for _, _, r in decisions(root)] == [None, "no_final_assistant_turn", "ends_on_user_turn"]
    con = duckdb.connect(str(root / "target/prefclean.duckdb"), read_only=True)
    assert con.execute("select source_row, reason, original.chosen from excluded_rows").fetchall() == \
        [(2, "no_final_assistant_turn", rows[1]["chosen"]), (3, "ends_on_user_turn", rows[2]["chosen"])]


def test_init_from_a_file_no_format_fits_names_its_columns(tmp_path, run_cli):
    source = tmp_path / "odd.jsonl"
    source.write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n", encoding="utf-8")
    result = run_cli("init", "proj", "--from", source, cwd=tmp_path)
    assert result.exit_code == 2
    assert "question VARCHAR, answer VARCHAR" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "proj/prefclean.yml").exists()


def test_init_from_with_a_named_format_and_a_missing_file(tmp_path, run_cli):
    source = tmp_path / "std.jsonl"
    source.write_text(json.dumps({"prompt": "2+2?", "chosen": "4", "rejected": "5"}) + "\n", encoding="utf-8")
    result = run_cli("init", "proj", "--from", source, "--format", "trl_standard", cwd=tmp_path)
    assert result.exit_code == 0 and "format: trl_standard (named, dpo)" in result.output, result
    wrong = run_cli("init", "proj2", "--from", source, "--format", "trl_standrd", cwd=tmp_path)
    assert wrong.exit_code == 2 and "did you mean 'trl_standard'" in wrong.output
    missing = run_cli("init", "proj3", "--from", tmp_path / "nope.jsonl", cwd=tmp_path)
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_plain_init_gets_the_whole_pipeline(tmp_path, run_cli, query, fake_judge):
    assert run_cli("init", "newproj", cwd=tmp_path).exit_code == 0
    root = tmp_path / "newproj"
    use_fake_judge(root, fake_judge)
    build(run_cli, root)
    assert query(root, "select count(*) from pair_decisions") == [(2,)]
    cleaned = duckdb.connect().execute(f"select * from '{root}/target/exports/pairs_cleaned.parquet'").fetchall()
    assert len(cleaned) == 2 and all(len(row) == 4 for row in cleaned)  # system, question, chosen, rejected


def test_the_scaffolded_pipeline_stays_in_step_with_the_example_project():
    """The template's judging and decision models are the example's, adapted only where staged rows differ."""
    repo = Path(__file__).resolve().parents[1]
    template = repo / "prefclean/project_template/dpo/models"
    example = lambda name: (repo / "models" / name).read_text(encoding="utf-8")  # noqa: E731
    assert (template / "pair_ratings.sql").read_text(encoding="utf-8") == example("pair_ratings.sql")
    assert (template / "pair_decisions.sql").read_text(encoding="utf-8") == example("pair_decisions.sql").replace(
        "s.instruction, s.chosen", "s.instruction, s.messages, s.chosen")
    ours = (template / "judged_pairs.sql").read_text(encoding="utf-8")
    theirs = example("judged_pairs.sql")
    body = lambda text: text[text.index("{{ config("):]  # noqa: E731  (the header comment differs)
    assert body(ours) == body(theirs).replace("judge_panel('instruction',", "judge_panel('conversation',").replace(
        "judge_panel('p.instruction',", "judge_panel('p.conversation',").replace(
        "    system,\n    instruction,\n    chosen,\n    rejected,\n", "").replace(
        "judge('p.instruction',", "judge('p.conversation',")


def test_the_judge_and_the_dashboard_pair_view_show_the_turns_before_the_final_one(tmp_path, run_cli, fake_judge):
    from test_dashboard import start_dashboard, stop

    rows = [{"conversations": [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello! How can I help?"},
                               {"from": "human", "value": "What is 2+2?"}],
             "chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", "value": "5"}}]
    source = tmp_path / "chat.jsonl"
    source.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    assert run_cli("init", "proj", "--from", source, cwd=tmp_path).exit_code == 0
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    fake_judge.control(record_prompts=True)
    build(run_cli, root)
    [prompt] = fake_judge.stats()["prompts"]
    assert prompt.index('<turn 1 role="user">\nHi there') < prompt.index('<turn 2 role="assistant">\nHello!') \
        < prompt.index("<instruction>\nWhat is 2+2?\n</instruction>")
    pair_id = duckdb.connect(str(root / "target/prefclean.duckdb"), read_only=True).execute(
        "select pair_id from pair_decisions").fetchall()[0][0]
    served = start_dashboard(root)
    try:
        status, html, _ = served.get(f"/pairs/{pair_id}")
    finally:
        stop(served)
    assert status == 200
    turns = html[html.index('id="turns"'):html.index("Final user turn")]
    assert turns.index("Hi there") < turns.index("Hello! How can I help?")
    assert "What is 2+2?" in html[html.index("Final user turn"):]


@pytest.mark.parametrize("layout", ["alpaca", "sft_messages"])
def test_an_sft_dataset_is_graded_against_the_rubric_and_kept_rows_come_back_unchanged(layout, tmp_path, run_cli,
                                                                                         fake_judge):
    def row(i, answer):
        if layout == "alpaca":
            return {"instruction": f"Question {i}", "input": "", "output": answer}
        return {"messages": [msg("user", f"Question {i}"), msg("assistant", answer)]}

    rows = [row(i, f"answer {i} [[rate={5 if i % 2 else 2}]]") for i in range(6)]
    rows.append({"instruction": "No answer", "input": "", "output": None} if layout == "alpaca"
                else {"messages": [msg("user", "Question"), msg("assistant", "a"), msg("user", "and?")]})
    source = tmp_path / "sft.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_cli("init", "proj", "--from", source, "--kind", "sft", cwd=tmp_path)
    assert f"format: {layout} (detected, sft)" in result.output, result
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    fake_judge.control(record_prompts=True)
    build(run_cli, root)
    assert all("[RESULT]" in p and "Question" in p for p in fake_judge.stats()["prompts"])  # Prometheus grading
    con = duckdb.connect(str(root / "target/prefclean.duckdb"), read_only=True)
    assert con.execute("select decision, reason, count(*) from response_decisions group by all order by 1").fetchall() \
        == [("drop", "below_threshold", 3), ("keep", "meets_threshold", 3)]
    assert con.execute("select reason from excluded_rows").fetchall() == \
        [("missing_response" if layout == "alpaca" else "ends_on_user_turn",)]
    cleaned = [json.loads(line) for line in (root / "target/exports/sft_cleaned.jsonl").read_text().splitlines()]
    assert cleaned == [rows[i] for i in (1, 3, 5)]
    summary = json.loads((root / "target/summary.json").read_text())
    assert summary["decisions"] == {"drop": 3, "keep": 3} and (summary["rows_in"], summary["unaccounted"]) == (7, 0)


def test_n_completions_are_rated_together_and_binarized_best_against_a_lower_rated_one(tmp_path, run_cli,
                                                                                        fake_judge):
    def completions(i, ratings):
        return [{"model": f"m{k}", "response": f"answer {i}.{k} [[rate={r}]]"} for k, r in enumerate(ratings)]

    rows = [{"instruction": "Q0", "completions": completions(0, [3, 5, 1, 2])},   # best 2nd, lower: 1st, 3rd, 4th
            {"instruction": "Q1", "completions": completions(1, [4, 4, 4])},      # all tie -> no pair
            {"instruction": "Q2", "completions": completions(2, [2, 1])},         # all poor -> no pair
            {"instruction": "Q3", "completions": completions(3, [5, 4])},         # best 1st, rejected 2nd
            {"instruction": "Q4", "completions": completions(4, [5])}]            # one completion: excluded
    source = tmp_path / "uf.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_cli("init", "proj", "--from", source, cwd=tmp_path)
    assert "format: completions (detected, completions)" in result.output, result
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    fake_judge.control(record_prompts=True)
    build(run_cli, root)
    assert sorted(p.count("<text ") for p in fake_judge.stats()["prompts"]) == [2, 2, 3, 4]  # all N at once
    con = duckdb.connect(str(root / "target/prefclean.duckdb"), read_only=True)
    audit = con.execute("select instruction, ratings, chosen_index, rejected_index, decision, reason "
                        "from completion_pairs order by instruction").fetchall()
    assert [(a[0], a[4], a[5]) for a in audit] == [("Q0", "keep", "binarized"), ("Q1", "drop", "no_lower_rated"),
                                                  ("Q2", "drop", "all_poor"), ("Q3", "keep", "binarized")]
    assert audit[0][1] == [3, 5, 1, 2] and audit[0][2] == 2 and audit[0][3] in (1, 3, 4)
    assert audit[3][2:4] == (1, 2)
    assert con.execute("select reason from excluded_rows").fetchall() == [("fewer_than_two_completions",)]
    cleaned = [json.loads(line) for line in (root / "target/exports/uf_cleaned.jsonl").read_text().splitlines()]
    q0 = rows[0]["completions"]
    assert cleaned[0] == {"prompt": [msg("user", "Q0")], "chosen": [msg("assistant", q0[1]["response"])],
                          "rejected": [msg("assistant", q0[audit[0][3] - 1]["response"])]}
    assert cleaned[1]["chosen"] == [msg("assistant", rows[3]["completions"][0]["response"])] and len(cleaned) == 2
    summary = json.loads((root / "target/summary.json").read_text(encoding="utf-8"))
    assert (summary["rows_in"], summary["unaccounted"], summary["excluded"]) == (5, 0, {"fewer_than_two_completions": 1})


@pytest.mark.llm
def test_init_from_builds_as_is_with_the_offline_smoke_test_judge(tmp_path, run_cli):
    """What a new user runs: init --from their file, then build, with no judge configured (SmolLM2 in llama.cpp)."""
    source = shared_file("llamafactory_v1_dpo_demo.jsonl")
    assert run_cli("init", "myproj", "--from", source, cwd=tmp_path).exit_code == 0
    root = tmp_path / "myproj"
    result, _ = build(run_cli, root)
    assert "smoke" in result.output.lower()  # the build says its judge is only a smoke test
    summary = json.loads((root / "target/summary.json").read_text(encoding="utf-8"))
    assert (summary["rows_in"], summary["unaccounted"], summary["pairs"]) == (10, 0, 10)
    out = root / "target/exports/llamafactory_v1_dpo_demo_cleaned.jsonl"
    inputs = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    cleaned = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.stat().st_size else []
    assert all(row in inputs for row in cleaned)  # the tiny judge keeps few or none; those kept are unchanged


def test_a_named_format_that_does_not_fit_the_source_is_one_line_naming_its_columns(tmp_path, run_cli):
    source = shared_file("llamafactory_dpo_en_demo.jsonl")
    assert run_cli("init", "proj", "--from", source, cwd=tmp_path).exit_code == 0
    root = tmp_path / "proj"
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["sources"]["llamafactory_dpo_en_demo"]["format"] = "hh_rlhf"
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 2, result
    assert "is set to format 'hh_rlhf'" in result.output and "conversations STRUCT" in result.output
    assert "it looks like 'sharegpt'" in result.output and "Traceback" not in result.output


def test_kept_jsonl_rows_come_back_byte_for_byte_and_flipped_ones_keep_their_key_order(tmp_path, run_cli, fake_judge):
    """Key order, spacing and number formatting as the file has them (DuckDB's own JSON writer would change all
    three); a flipped row has its responses exchanged and every key where it was."""
    lines = [f'{{"id":{i}, "rejected" : "bad {i}",  "score": 1.50, "chosen": "good {i}", "prompt": "q{i}?",'
             f' "meta": {{"b": 2, "a": [1e3, true]}}, "note": "caf\\u00e9"}}' for i in range(8)]
    source = tmp_path / "odd.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("init", "proj", "--from", source, cwd=tmp_path)
    assert "format: trl_standard (detected, dpo)" in result.output, result
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    build(run_cli, root)
    out_lines = (root / "target/exports/odd_cleaned.jsonl").read_text(encoding="utf-8").splitlines()
    inputs = [json.loads(line) for line in lines]
    kept, flipped = check_round_trip(root, inputs, [json.loads(x) for x in out_lines], "trl_standard",
                                     lines=(lines, out_lines))
    assert kept > 0 and flipped > 0


def test_a_tool_calling_response_is_judged_turn_by_turn_and_written_back_unchanged(tmp_path, run_cli, fake_judge):
    call = {"role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]}
    rows = [{"prompt": [{"role": "user", "content": [{"type": "text", "text": f"Weather in city {i}?"}]}],
             "chosen": [call, {"role": "tool", "content": "21 C"}, msg("assistant", f"It is 21 C in city {i}.")],
             "rejected": [msg("assistant", "I cannot know.")]} for i in range(4)]
    rows.append({"prompt": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}],
                 "chosen": [msg("assistant", "A cat.")], "rejected": [msg("assistant", "A dog.")]})
    source = tmp_path / "tools.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_cli("init", "proj", "--from", source, cwd=tmp_path)
    assert "format: trl_conversational (detected, dpo)" in result.output, result
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    fake_judge.control(record_prompts=True)
    build(run_cli, root)
    prompts = fake_judge.stats()["prompts"]
    assert len(prompts) == 4 and all("Weather in city" in p for p in prompts)
    for p in prompts:
        assert p.index("[assistant]\ntool_calls: ") < p.index("[tool]\n21 C") < p.index("[assistant]\nIt is 21 C")
    out_lines = (root / "target/exports/tools_cleaned.jsonl").read_text(encoding="utf-8").splitlines()
    source_lines = source.read_text(encoding="utf-8").splitlines()
    kept, flipped = check_round_trip(root, rows, [json.loads(x) for x in out_lines], "trl_conversational",
                                     lines=(source_lines, out_lines))
    assert kept + flipped == 4
    assert [r for *_, r in decisions(root)] == [None] * 4 + ["non_text_content"]


def test_a_json_array_file_comes_back_as_a_json_array(tmp_path, run_cli, fake_judge):
    """LLaMA-Factory ships its datasets as JSON arrays (dpo_en_demo.json): the cleaned file is one too."""
    lines = shared_file("llamafactory_dpo_en_demo.jsonl").read_text(encoding="utf-8").splitlines()[:12]
    rows = [json.loads(line) for line in lines]
    source = tmp_path / "dpo_en_demo.json"
    source.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    result = run_cli("init", "proj", "--from", source, cwd=tmp_path)
    assert "format: sharegpt (detected, dpo)" in result.output and "dpo_en_demo_cleaned.json\n" in result.output
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge)
    build(run_cli, root)
    cleaned = json.loads((root / "target/exports/dpo_en_demo_cleaned.json").read_text(encoding="utf-8"))
    kept, flipped = check_round_trip(root, rows, cleaned, "sharegpt")
    assert kept > 0 and flipped > 0


def test_a_scaffolded_pipeline_runs_the_uncertain_bias_check_on_close_kept_pairs(tmp_path, run_cli, fake_judge):
    rows = [{"prompt": [msg("user", f"q{i}")], "chosen": [msg("assistant", f"good {i}")],
             "rejected": [msg("assistant", f"bad {i}")]} for i in range(6)]
    source = tmp_path / "conv.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run_cli("init", "proj", "--from", source, cwd=tmp_path)
    root = tmp_path / "proj"
    use_fake_judge(root, fake_judge, check_position_bias="uncertain")
    fake_judge.control(position_ratings=[4, 3])  # every pair close, and kept or flipped (allow_flip)
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 6 + 6  # too few verdicts for a tilt: both directions re-checked
    con = duckdb.connect(str(root / "target/prefclean.duckdb"), read_only=True)
    try:
        assert con.execute("select distinct bias_check, reason from pair_decisions").fetchall() == [
            ("swapped", "position_bias")]  # a judge that rates by position flips every verdict when swapped
    finally:
        con.close()
