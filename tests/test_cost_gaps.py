"""Cost control, the gaps a user pass found (issue 15): a wrong var is named by `plan` as by `build`, before
anything is paid for, and `plan`'s errors name the user's files, not the throwaway copy it builds on."""

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
