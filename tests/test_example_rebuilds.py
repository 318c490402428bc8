"""Rebuilding the example project as its inputs change: nothing stale survives, nothing is judged twice."""

from __future__ import annotations

import json

from judge_fixtures import build, copy_example, judged, summary_json


def test_a_pair_removed_from_the_source_leaves_every_output(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge)
    build(run_cli, root)
    sample = root / "data" / "orca_sample.jsonl"
    lines = sample.read_text(encoding="utf-8").splitlines()
    gone = json.loads(lines[-1])
    sample.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    fake_judge.reset()
    result, _ = build(run_cli, root)
    assert "TESTS_FAILED=0" in result.output
    assert fake_judge.stats()["requests"] == 0  # the remaining pairs were judged already
    assert summary_json(root)["pairs"] == 51
    left = judged(root, "select count(*) as n from pair_decisions where instruction = $$" + gone["question"] + "$$")
    assert left == [{"n": 0}]


def test_changing_the_aspect_rejudges_every_pair_and_changing_back_costs_nothing(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge)
    build(run_cli, root)
    first = fake_judge.stats()["requests"]
    assert first == 104  # 52 pairs, judged twice for the position-bias check
    build(run_cli, root, "--vars", '{"aspect": "honesty"}')
    assert fake_judge.stats()["requests"] == 2 * first
    assert judged(root, "select distinct judgments[1].aspect as a from judged_pairs") == [{"a": "honesty"}]
    build(run_cli, root)  # back to overall-rating: the judgment cache answers
    assert fake_judge.stats()["requests"] == 2 * first
    assert judged(root, "select distinct judgments[1].aspect as a from judged_pairs") == [{"a": "overall-rating"}]


def test_each_pairs_swapped_order_is_sent_right_after_it_so_a_serial_judge_reuses_their_shared_prefix(
        tmp_path, run_cli, fake_judge):
    import re

    import yaml

    root = copy_example(tmp_path, fake_judge)
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"]["fake"]["concurrency"] = 1  # the order sent is the order the server sees
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    fake_judge.control(record_prompts=True)
    build(run_cli, root)
    prompts = fake_judge.stats()["prompts"]
    assert len(prompts) == 104

    def parts(prompt):
        texts = re.findall(r"<text (\d)>\n(.*?)\n</text \1>", prompt, re.DOTALL)
        return prompt[:prompt.index("<text 1>")], [text for _, text in texts]

    for first, second in zip(prompts[::2], prompts[1::2]):  # the same pair, its texts swapped
        (before, texts), (before_swapped, texts_swapped) = parts(first), parts(second)
        assert before == before_swapped and texts_swapped == texts[::-1] and texts[0] != texts[1]
    assert len({parts(p)[0] for p in prompts[::2]}) == 52  # and each pair once


def test_a_changed_incremental_query_asks_for_a_full_refresh(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, vars={"check_position_bias": False})
    build(run_cli, root)
    model = root / "models" / "judged_pairs.sql"
    model.write_text(model.read_text(encoding="utf-8").replace("select\n  f.*,\n", "select\n  f.*,\n  42 as answer,\n"),
                     encoding="utf-8")
    result, _ = build(run_cli, root, ok=False)
    assert result.exit_code == 1
    assert "incremental model 'judged_pairs' has other columns than its table (new: answer)" in result.output
    assert "--full-refresh --select judged_pairs" in result.output
    build(run_cli, root, "--full-refresh", "--select", "judged_pairs")


def test_judge_override_rejudges_and_the_next_plain_build_goes_back(tmp_path, run_cli, fake_judge):
    other = {"other": {"engine": "openai", "base_url": fake_judge.url, "model": "fake-other"}}
    root = copy_example(tmp_path, fake_judge, vars={"check_position_bias": False}, extra_judges=other)
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 52
    build(run_cli, root, "--judge", "other")
    assert fake_judge.stats()["models"] == {"fake-judge": 52, "fake-other": 52}
    assert judged(root, "select distinct judgments[1].model as m from judged_pairs") == [{"m": "fake-other"}]
    build(run_cli, root)  # back to the panel in vars: every judgment comes from the cache
    assert fake_judge.stats()["requests"] == 104
    assert judged(root, "select distinct judgments[1].model as m from judged_pairs") == [{"m": "fake-judge"}]
