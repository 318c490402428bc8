"""prefclean.yml and property files refuse what YAML would otherwise drop without a word."""

from __future__ import annotations

from prefclean.errors import EXIT_USER_ERROR

SOURCE = "sources:\n  pairs: {type: inline, rows: [{a: 1}]}\n"


def test_a_key_given_twice_in_prefclean_yml_is_an_error_naming_it_and_both_lines(make_project, run_cli):
    root = make_project(config="name: proj\nvars:\n  min_margin: 1\n  min_margin: 3\n" + SOURCE,
                        models={"m": "select * from {{ source('pairs') }}"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "prefclean.yml line 4: invalid YAML: key `min_margin` is given twice (first on line 3)" in result.output
    assert "Traceback" not in result.output


def test_a_second_top_level_section_is_refused_not_merged_away(make_project, run_cli):
    root = make_project(config="name: proj\n" + SOURCE + "sources:\n  other: {type: inline, rows: [{a: 2}]}\n",
                        models={"m": "select * from {{ source('pairs') }}"})
    result = run_cli("compile", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and "key `sources` is given twice" in result.output, result.output


def test_a_key_given_twice_in_a_property_file_is_an_error(make_project, run_cli):
    root = make_project(config="name: proj\n" + SOURCE,
                        models={"m": "select * from {{ source('pairs') }}",
                                "schema.yml": "version: 2\nmodels:\n  - name: m\n    description: one\n"
                                              "    description: two\n"})
    result = run_cli("compile", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "schema.yml line 5: invalid YAML: key `description` is given twice" in result.output, result.output


def test_an_infinite_or_nan_number_is_refused(make_project, run_cli):
    for value in (".inf", "-.inf", ".nan"):
        root = make_project(config="name: proj\n" + SOURCE +
                            f"judges:\n  j: {{engine: openai, base_url: 'http://127.0.0.1:9/v1', temperature: {value}}}\n",
                            models={"m": "select * from {{ source('pairs') }}"})
        result = run_cli("compile", cwd=root)
        assert result.exit_code == EXIT_USER_ERROR, (value, result.output)
        assert "judges.j.temperature" in result.output, (value, result.output)


def test_yaml_reads_the_same_with_either_parser_and_a_refused_document_is_named_in_pyyamls_words(make_project,
                                                                                                    run_cli):
    import yaml

    from prefclean.yamlfile import _StrictLoader, load_yaml

    text = "a: 1\nb: [x, {c: 2.5, d: null}]\nc: &v {e: yes}\nd: *v\nf: '2024-01-01'\ng: 2024-01-01\n"
    assert load_yaml(text) == yaml.load(text, Loader=_StrictLoader)  # noqa: S506
    root = make_project(config="name: proj\nvars:\n\tmin_margin: 1\n" + SOURCE,
                        models={"m": "select * from {{ source('pairs') }}"})
    result = run_cli("compile", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "prefclean.yml line 3: invalid YAML: found character '\\t' that cannot start any token" in result.output
