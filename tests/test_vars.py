"""A var's value in prefclean.yml declares its type; a --vars override of another type is a user error."""

from __future__ import annotations

import pytest

from prefclean.errors import EXIT_USER_ERROR, ProjectError
from prefclean.vars import check_var_types

DECLARED = {"min_margin": 1, "min_agreement": 1.0, "allow_flip": False, "judges": ["default"], "aspect": "honesty",
            "optional": None}


@pytest.mark.parametrize("override, message", [
    ({"min_margin": "one"}, "--vars: var 'min_margin' is \"one\" (a string); prefclean.yml declares it a number "
                            "(min_margin: 1)"),
    ({"allow_flip": "yes"}, "var 'allow_flip' is \"yes\" (a string); prefclean.yml declares it a boolean"),
    ({"allow_flip": 1}, "var 'allow_flip' is 1 (a number); prefclean.yml declares it a boolean"),
    ({"min_margin": True}, "var 'min_margin' is true (a boolean); prefclean.yml declares it a number"),
    ({"judges": "fake"}, "var 'judges' is \"fake\" (a string); prefclean.yml declares it a list"),
])
def test_an_override_of_another_type_names_the_var_and_both_types(override, message):
    with pytest.raises(ProjectError) as exc:
        check_var_types(DECLARED, override)
    assert message in str(exc.value)


def test_overrides_of_the_declared_type_and_new_vars_pass():
    check_var_types(DECLARED, {"min_margin": 2, "min_agreement": 1, "judges": ["a", "b"], "aspect": "x",
                               "optional": "anything", "new_var": 3, "allow_flip": True, "min_margin_": "x"})


def test_the_cli_refuses_a_wrongly_typed_var_before_building(make_project, run_cli):
    root = make_project(config={"vars": {"min_margin": 1}},
                        models={"m": "select 1 as x where 2 >= {{ var('min_margin') }}"})
    result = run_cli("build", "--vars", '{"min_margin": "one"}', cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert result.output.strip() == ('error: --vars: var \'min_margin\' is "one" (a string); prefclean.yml declares '
                                     "it a number (min_margin: 1)")
    assert not (root / "target" / "prefclean.duckdb").exists()
    assert run_cli("build", "--vars", '{"min_margin": 2}', cwd=root).exit_code == 0


@pytest.mark.parametrize("var, value, message", [
    ("min_margin", "one", "min_margin must be a number, got \"one\" (a string): set var 'min_margin' to a number"),
    ("poor_max", [2], "poor_max must be a number, got [2] (a list)"),
    ("min_agreement", True, "min_agreement must be a number, got true (a boolean)"),
    ("allow_flip", "no", "allow_flip must be true or false, got \"no\" (a string)"),
    ("drop_position_biased", 1, "drop_biased must be true or false, got 1 (a number): set var 'drop_position_biased'"),
])
def test_a_wrongly_typed_threshold_in_prefclean_yml_names_the_var_not_a_binder_error(tmp_path, run_cli, fake_judge,
                                                                                     var, value, message):
    from judge_fixtures import copy_example

    root = copy_example(tmp_path, fake_judge, rows=[{"system": "", "instruction": "q", "chosen": "a", "rejected": "b"}],
                        vars={var: value})
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "model 'pair_decisions'" in result.output and message in result.output, result
    assert "Binder" not in result.output and "Traceback" not in result.output
