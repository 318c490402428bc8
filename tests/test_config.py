"""Typed prefclean.yml: every key of every section is checked, per engine and per target, and the JSON Schema
that editors use is the one the checks come from."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prefclean.config import (BUILTIN_VARS, JUDGE_CLASSES, MODELINE, RESERVED_VARS, SCHEMA_FILE, JudgeConfig,
                              load_project, project_schema, validate_file)
from prefclean.errors import EXIT_USER_ERROR

REPO = Path(__file__).resolve().parents[1]
SCHEMA = project_schema()


def _resolve(node: dict) -> dict:
    return SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node


def _sample(prop: dict):
    """A valid value for a schema property (only required keys need one)."""
    prop = _resolve(prop)
    if "const" in prop:
        return prop["const"]
    if "enum" in prop:
        return prop["enum"][0]
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    return {"string": "x", "integer": 1, "number": 1, "boolean": True, "object": {}, "array": []}.get(
        options[0].get("type"), "x")


def _misspelled(key: str) -> str:
    i = len(key) // 2
    return key[:i] + key[i + 1:]


def _cases():
    """(config with one key misspelled, the misspelled key's path, the key), for every key the schema has."""
    top = SCHEMA["properties"]
    for key in top:
        yield {_misspelled(key): None}, _misspelled(key), key
    executor = next(_resolve(option) for option in top["executor"]["anyOf"] if "$ref" in option)
    for key in executor["properties"]:
        yield {"executor": {_misspelled(key): None}}, f"executor.{_misspelled(key)}", key
    for section, tag in (("sources", "type"), ("judges", "engine"), ("exports", "target")):
        union = top[section]["additionalProperties"]
        for member in map(_resolve, union.get("oneOf") or union["anyOf"]):
            props = member["properties"]
            kind = props[tag]["const"]
            minimal = {k: _sample(p) for k, p in props.items() if k in member.get("required", []) or k == tag}
            for key in props:
                entry = {k: v for k, v in minimal.items() if k != key}
                entry[_misspelled(key)] = _sample(props[key])
                yield {section: {"e": entry}}, f"{section}.e.{_misspelled(key)}", f"{kind}.{key}"


CASES = list(_cases())


@pytest.mark.parametrize("config, path, key", CASES, ids=[key for _, _, key in CASES])
def test_every_key_of_every_section_misspelled_is_one_line_naming_it(make_project, run_cli, config, path, key):
    root = make_project(config=config)
    result = run_cli("judges", "--no-check", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    [line] = result.output.strip().splitlines()
    assert f"`{path}`" in line and f"did you mean `{key.rsplit('.', 1)[-1]}`?" in line, line
    assert line.startswith("error: prefclean.yml: ")


def test_the_misspelling_cases_cover_every_section_and_kind():
    kinds = {key.split(".")[0] for _, path, key in CASES if path.count(".") == 2}
    assert {"parquet", "jsonl", "csv", "duckdb", "huggingface", "inline", "openai", "hf-inference", "llamacpp",
            "hub", "argilla"} <= kinds
    assert len(CASES) > 100


def _foreign_options():
    for engine, cls in JUDGE_CLASSES.items():
        for other, other_cls in JUDGE_CLASSES.items():
            for key in other_cls.config_keys():
                if key not in cls.config_keys():
                    yield engine, key, other


FOREIGN = sorted(set(_foreign_options()))


@pytest.mark.parametrize("engine, key, owner", FOREIGN, ids=[f"{e}-{k}" for e, k, _ in FOREIGN])
def test_each_engine_rejects_another_engines_option_naming_the_engine(make_project, run_cli, engine, key, owner):
    root = make_project(config={"judges": {"j": {"engine": engine, key: 1}}})
    result = run_cli("judges", "--no-check", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert f"`judges.j.{key}` is not an option of the {engine} engine (only of " in result.output, result.output
    assert owner in result.output.split("(only of ", 1)[1]


def test_engine_specific_options_reach_the_engine_as_set(make_project):
    root = make_project(config={"judges": {
        "local": {"engine": "llamacpp", "model": "m.gguf", "n_ctx": 4096, "grammar": False},
        "api": {"engine": "openai", "base_url": "http://127.0.0.1:9/v1/", "send_grammar": True, "max_new_tokens": 64},
        "hf": {"engine": "hf-inference", "provider": "together", "timeout": 5}}})
    judges = load_project(root).judges
    assert judges["local"].options == {"n_ctx": 4096, "grammar": False}  # unset keys keep the engine's defaults
    assert (judges["local"].base_urls, judges["local"].concurrency, judges["local"].timeout) == ((), 1, None)
    api = judges["api"]
    assert api.base_urls == ("http://127.0.0.1:9/v1",) and api.base_url == "http://127.0.0.1:9/v1"
    assert api.options == {"send_grammar": True} and api.max_tokens == 64 and api.name == "api"
    assert judges["hf"].options == {"provider": "together"} and judges["hf"].base_urls == ()


def test_a_judge_config_is_built_for_its_engine_frozen_hashable_and_picklable():
    judge = JudgeConfig(name="j", engine="openai", base_urls=("http://h/v1",), extra_body={"top_k": 3})
    assert type(judge).__name__ == "OpenAIJudge" and judge.name == "j"
    assert hash(judge) == hash(JudgeConfig(name="j", engine="openai", base_urls=("http://h/v1",), extra_body={"top_k": 3}))
    assert pickle.loads(pickle.dumps(judge)) == judge  # Ray actors receive it pickled
    with pytest.raises(Exception, match="frozen"):
        judge.concurrency = 2
    assert judge.model_copy(update={"concurrency": 2}).concurrency == 2


def test_export_options_are_the_targets_own_keys_as_set(make_project):
    root = make_project(config={"exports": {
        "pq": {"model": "m", "target": "parquet", "compression": "GZIP", "row_group_size": 1000},
        "hub": {"model": "m", "target": "hub", "repo_id": "a/b", "on_build": False}}})
    exports = load_project(root).exports
    assert exports["pq"].options == {"compression": "gzip", "row_group_size": 1000} and exports["pq"].name == "pq"
    assert exports["hub"].options == {"repo_id": "a/b"} and exports["hub"].on_build is False


@pytest.mark.parametrize("config, expected", [
    ({"exports": {"e": {"model": "m", "target": "parquet", "compression": "zip"}}},
     "`exports.e.compression` is 'zip', expected 'zstd', 'snappy', 'gzip'"),
    ({"exports": {"e": {"model": "m", "target": "hub", "rows_per_shard": 0}}},
     "`exports.e.rows_per_shard` must be a whole number >= 1, got 0"),
    ({"judges": {"j": {"engine": "openai", "temperature": -1}}}, "`judges.j.temperature` must be a number >= 0, got -1"),
    ({"judges": {"j": {"engine": "openai", "base_url": "http://a", "base_urls": ["http://b"]}}},
     "`judges.j.base_url` and `base_urls` are the same setting: give one"),
    ({"judges": {"j": {"engine": "olama"}}}, "`judges.j.engine` is 'olama', expected one of openai, openai-batch, hf-inference, llamacpp"),
    ({"judges": {"j": {"engine": "openai", "name": "k"}}}, "unknown key `judges.j.name` (the name is the key, 'j')"),
    ({"judges": {"jj": {"engine": "openai"}}, "default_judge": "j"},
     "`default_judge` is 'j', which is not in `judges`; did you mean 'jj'?"),
    ({"executor": "rey"}, "`executor` is 'rey', expected 'local' or 'ray'"),
    ({"executor": {"type": "ray", "num_actors": 0}}, "`executor.num_actors` must be a whole number >= 1, got 0"),
    ({"sources": {"s": {"type": "jsonl", "path": "a.jsonl", "table": "t"}}},
     "`sources.s.table` is not an option of a jsonl source (only of duckdb)"),
    ({"vars": {"judge_override": "x"}}, "`vars.judge_override` is set by prefclean (from --judge NAME)"),
    ({"judges": {"j": {"engine": "openai", "seed": True}}}, "`judges.j.seed` must be a whole number, got bool"),
    ({"exports": {"e": {"model": "m", "target": "csv", "on_build": "no"}}},
     "`exports.e.on_build` must be true or false, got str"),
    ({"sources": {"s": {"rows": [{"a": 1}], "table": "t"}}}, "`sources.s.table` is not an option of an inline source"),
])
def test_value_errors_are_one_line_with_the_key_path(make_project, run_cli, config, expected):
    root = make_project(config=config)
    result = run_cli("judges", "--no-check", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


VARS_MODEL = {"m": "select {{ var('min_margin') }} as margin, {{ var('shard') or 0 }} as shard"}


def test_an_undeclared_cli_var_is_an_error_with_a_suggestion(make_project, run_cli):
    root = make_project(config={"vars": {"min_margin": 1}}, models=VARS_MODEL)
    result = run_cli("build", "--vars", '{"min_margn": 3}', cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert result.output.strip() == ("error: --vars: `min_margn` is not declared under `vars:` in prefclean.yml; "
                                     "did you mean `min_margin`? (to allow it, declare it there, e.g. `min_margn: null`)")
    assert not (root / "target/prefclean.duckdb").exists()


def test_a_var_declared_null_may_be_passed(make_project, run_cli, query):
    root = make_project(config={"vars": {"min_margin": 1, "shard": None}}, models=VARS_MODEL)
    assert run_cli("build", cwd=root).exit_code == 0
    assert query(root, "select margin, shard from m") == [(1, 0)]
    result = run_cli("build", "--vars", '{"shard": 3, "min_margin": 2}', cwd=root)
    assert result.exit_code == 0, result.output
    assert query(root, "select margin, shard from m") == [(2, 3)]


def test_built_in_vars_may_be_passed_undeclared_but_judge_override_only_through_judge(make_project, run_cli):
    root = make_project(config={"vars": {"min_margin": 1}}, models=VARS_MODEL)
    assert load_project(root, {"aspect": "honesty", "source": "s"}).vars["aspect"] == "honesty"
    result = run_cli("build", "--vars", '{"judge_override": "x"}', cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "--vars: `judge_override` is set by prefclean; use --judge NAME" in result.output


def _vars_read_by_prefclean() -> set[str]:
    """Every `<x>.vars.get("name")` / `<x>.vars["name"]` in prefclean's own code, and THRESHOLD_VARS."""
    names = set()
    for path in (REPO / "prefclean").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target, key = None, None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
                target, key = node.func.value, node.args[0]
            elif isinstance(node, ast.Subscript):
                target, key = node.value, node.slice
            if (isinstance(target, ast.Attribute) and target.attr == "vars" and isinstance(key, ast.Constant)
                    and isinstance(key.value, str)):
                names.add(key.value)
    from prefclean.export.hub_target import THRESHOLD_VARS

    return names | set(THRESHOLD_VARS)


def _vars_set_by_prefclean() -> set[str]:
    """Every `{**<x>.vars, "name": ...}` in prefclean's own code: vars a build sets for the models."""
    names = set()
    for path in (REPO / "prefclean").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Dict) and None in node.keys
                    and any(isinstance(v, ast.Attribute) and v.attr == "vars" for k, v in zip(node.keys, node.values)
                            if k is None)):
                names |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return names


def test_every_var_prefclean_reads_itself_is_a_declared_built_in():
    read = _vars_read_by_prefclean()
    assert {"source", "judges", "aspect"} <= read  # the scan finds what it should
    assert read <= set(BUILTIN_VARS) | set(RESERVED_VARS)


def test_every_var_prefclean_sets_for_the_models_is_reserved():
    assert {"judge_override", "refresh_judgments"} <= _vars_set_by_prefclean() <= set(RESERVED_VARS)


def test_executor_defaults_are_the_ray_executors():
    from prefclean.config import ExecutorConfig
    from prefclean.judge.ray_executor import OPTIONS

    defaults = {name: field.default for name, field in ExecutorConfig.model_fields.items()}
    assert defaults == OPTIONS


def test_schema_command_prints_a_json_schema_that_validates_the_example(run_cli, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    result = run_cli("schema", cwd=tmp_path)
    assert result.exit_code == 0
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    example = yaml.safe_load((REPO / "prefclean.yml").read_text())
    assert list(validator.iter_errors(example)) == []
    wrong = {**example, "judges": {"j": {"engine": "llamacpp", "timeout": 3}}, "exports": {"e": {"model": "m"}}}
    assert len(list(validator.iter_errors(wrong))) == 2  # the editor flags what the CLI rejects
    assert not list(validator.iter_errors({"sources": {"s": {"path": "x.parquet"}}}))  # `type` may be inferred


def test_the_readmes_and_docs_yaml_examples_are_valid_configuration():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    blocks = [block.split("\n", 1)[1] for doc in ("README.md", "docs/scaling.md")
              for block in (REPO / doc).read_text().split("```yaml")[1:]]
    checked = 0
    for block in (b.split("```", 1)[0] for b in blocks):
        config = yaml.safe_load(block)
        if block.startswith("# models/"):  # a dbt property file (models/*.yml), not prefclean.yml
            continue
        if isinstance(config, dict) and set(config) <= set(SCHEMA["properties"]):
            validate_file(config)
            assert list(validator.iter_errors(config)) == [], block
            checked += 1
    assert checked >= 4


def test_the_example_points_editors_at_the_shipped_schema_and_it_is_current(run_cli, tmp_path):
    assert (REPO / "prefclean.yml").read_text().splitlines()[0] == MODELINE
    assert json.loads((REPO / SCHEMA_FILE).read_text()) == SCHEMA, "run: prefclean schema > prefclean.schema.json"


def test_init_writes_the_schema_its_project_file_points_at(run_cli, tmp_path):
    assert run_cli("init", str(tmp_path / "new")).exit_code == 0
    text = (tmp_path / "new/prefclean.yml").read_text()
    assert text.splitlines()[0] == MODELINE
    assert json.loads((tmp_path / "new" / SCHEMA_FILE).read_text()) == SCHEMA
    load_project(tmp_path / "new")


README_ERRORS = {  # the error lines the README shows, and a prefclean.yml that gives each
    "unknown key `judges.fast.temprature`": {"judges": {"fast": {"engine": "openai", "temprature": 0}}},
    "`judges.local.timeout` is not": {"judges": {"local": {"engine": "llamacpp", "timeout": 30}}},
    "`exports.audit.compression` is not": {"exports": {"audit": {"model": "m", "target": "csv", "compression": "gzip"}}},
}


@pytest.mark.parametrize("start", README_ERRORS)
def test_the_readmes_example_errors_are_what_prefclean_prints(make_project, run_cli, start):
    readme = (REPO / "README.md").read_text()
    [line] = [ln for ln in readme.splitlines() if ln.startswith("error: prefclean.yml: ") and start in ln]
    result = run_cli("judges", "--no-check", cwd=make_project(config=README_ERRORS[start]))
    assert result.output.strip() == line


STRICT_OPTIONS = '''
from typing import Literal

from pydantic import Field

from prefclean.config.judges import RemoteJudgeConfig


class StrictOptions(RemoteJudgeConfig):
    engine_options = ("house_level",)
    engine: Literal["strict"]
    house_level: int = Field(1, ge=1, description="how strict")
'''


def test_an_installed_engine_names_its_options_class_and_its_keys_are_checked(make_project, tmp_path):
    from test_plugins import install, prefclean

    site = tmp_path / "site-packages"
    install(site, "strict-judge", STRICT_OPTIONS, {"prefclean.engines": {"strict": "strict_judge:Nowhere",
                                                                         "open": "strict_judge:Nowhere"},
                                                   "prefclean.judge_options": {"strict": "strict_judge:StrictOptions"}})
    root = make_project(config={"judges": {"s": {"engine": "strict", "house_levl": 2}}})
    out = prefclean(site, "ls", "--project-dir", str(root))
    assert out.returncode == EXIT_USER_ERROR
    assert out.stderr.strip() == ("error: prefclean.yml: unknown key `judges.s.house_levl` for the strict engine; "
                                  "did you mean `house_level`?")
    # without an options class, the keys every judge has are typed and the rest reach the engine as options
    check = ("import prefclean.config as c; p = c.load_project({root!r}); "
             "print(p.judges['s'].options, p.judges['o'].options, p.judges['o'].concurrency)")
    (root / "prefclean.yml").write_text(yaml.safe_dump({"judges": {
        "s": {"engine": "strict", "house_level": 3}, "o": {"engine": "open", "concurrency": 2, "flavour": "x"}}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", check.format(root=str(root))], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.stdout.strip() == "{'house_level': 3} {'flavour': 'x'} 2", out.stderr
    schema = json.loads(prefclean(site, "schema").stdout)
    assert "StrictOptions" in schema["$defs"] and any(name.startswith("PluginJudge") for name in schema["$defs"]), schema["$defs"].keys()
