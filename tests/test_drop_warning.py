"""The run summary warns when cleaning drops more than `max_drop_rate` of the pairs, naming the main reasons."""

from __future__ import annotations

from judge_fixtures import build, copy_example, summary_json


def row(name, chosen, rejected):
    return {"system": "", "instruction": f"question {name}", "chosen": f"good {name} [[rate={chosen}]]",
            "rejected": f"bad {name} [[rate={rejected}]]"}


# 5 pairs: 2 kept (the judge agrees), 2 ties and 1 where both responses are poor -> 3 dropped (60%).
ROWS = [row("a", 5, 2), row("b", 4, 1), row("c", 3, 3), row("d", 4, 4), row("e", 1, 1)]


def test_a_build_that_drops_more_than_30_percent_warns_with_the_main_reasons(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars={"check_position_bias": False})
    result, _ = build(run_cli, root)
    s = summary_json(root)
    assert s["decisions"]["drop"] == 3 and s["pairs"] == 5
    assert s["drop_warning"]["rate"] == 0.6 and s["drop_warning"]["threshold"] == 0.3
    assert s["drop_warning"]["dropped"] == 3 and sum(s["drop_warning"]["reasons"].values()) == 3
    reasons = s["drop_warning"]["reasons"]
    assert list(reasons.values()) == sorted(reasons.values(), reverse=True)  # the main reason first
    main = ", ".join(f"{r} {n}" for r, n in reasons.items())
    assert f"WARNING: 3 of 5 pairs dropped (60%, above max_drop_rate 30%); mostly {main}." in result.output


def test_max_drop_rate_raises_the_threshold_and_a_build_under_it_does_not_warn(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars={"check_position_bias": False})
    result, _ = build(run_cli, root, "--vars", '{"max_drop_rate": 0.6}')
    assert "drop_warning" not in summary_json(root) and "pairs dropped" not in result.output


def test_a_max_drop_rate_that_is_not_a_share_is_one_line_exit_2(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars={"check_position_bias": False})
    for bad in ('{"max_drop_rate": 30}', '{"max_drop_rate": "a lot"}'):
        result = run_cli("build", "--project-dir", root, "--vars", bad)
        assert result.exit_code == 2, result
        assert "var 'max_drop_rate' is" in result.output and "share between 0 and 1" in result.output
        assert "Traceback" not in result.output
