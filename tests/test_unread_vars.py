"""A var in prefclean.yml that nothing reads is named in a warning (a misspelling would otherwise change nothing)."""

from prefclean.unread_vars import unread_vars_warning


def test_a_misspelled_var_is_named_with_the_var_it_was_meant_to_be(make_project, run_cli):
    root = make_project(config={"sources": {"s": {"type": "inline", "rows": [{"x": 1}]}},
                                "vars": {"limit_rows": 5, "limit_rowz": 6}},
                        models={"m": "select * from {{ source('s') }} limit {{ var('limit_rows') }}"})
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 0, result
    assert "var 'limit_rowz' (did you mean 'limit_rows'?)" in result.output, result.output
    assert "'limit_rows' (" not in result.output


def test_vars_read_only_by_prefclean_itself_or_in_a_branch_not_taken_are_not_called_unread(tmp_path):
    (tmp_path / "macros").mkdir()
    (tmp_path / "macros" / "m.sql").write_text("{% if false %}{{ var(\"rarely_used\") }}{% endif %}")
    declared = {"rarely_used": 1, "min_margin": 1, "max_drop_rate": 0.3, "judge_override": "x"}
    assert unread_vars_warning(tmp_path, declared) is None
    warning = unread_vars_warning(tmp_path, {"bias_chek_margin": 1})
    assert "'bias_chek_margin' (did you mean 'bias_check_margin'?)" in warning


def test_the_warning_is_shown_under_the_first_model_built(make_project, run_cli):
    """The project's text is read beside the build's start (runner.Later); its warning still comes with the first
    model, not a later one."""
    root = make_project(config={"vars": {"limit_rowz": 6}},
                        models={"a_first": "select 1 as x", "b_second": "select * from {{ ref('a_first') }}"})
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 0, result
    out = result.output
    assert out.count("limit_rowz") == 1, out
    assert out.index("a_first") < out.index("limit_rowz") < out.index("b_second"), out
