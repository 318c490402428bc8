"""Compiled Jinja templates are kept between builds (prefclean/jinjacache.py): a second compile of a project
compiles nothing, renders the same SQL, and a damaged or wrong file only costs a compile."""

from __future__ import annotations

import jinja2
import pytest

from prefclean.api import load_project
from prefclean.context import make_environment
from prefclean.jinjacache import TemplateCache
from prefclean.runner import load_graph

MODEL = "select {{ 1 + 1 }} as two, '{{ var('who', 'me') }}' as who\n"


def compiles(monkeypatch) -> list[str]:
    seen: list[str] = []
    original = jinja2.Environment.compile

    def counting(self, source, *args, **kwargs):
        seen.append(source)
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return seen


def test_a_second_compile_of_a_project_compiles_no_template_and_renders_the_same(make_project, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFCLEAN_CACHE_DIR", str(tmp_path / "cache"))
    root = make_project(models={"m.sql": MODEL})
    seen = compiles(monkeypatch)
    first, _ = load_graph(load_project(root))
    assert seen and (tmp_path / "cache" / "jinja").is_dir()
    seen.clear()
    second, _ = load_graph(load_project(root))
    assert seen == []
    assert second.models["m"].compiled_sql == first.models["m"].compiled_sql
    assert "2 as two" in first.models["m"].compiled_sql


def test_a_template_with_a_syntax_error_is_never_stored_and_fails_every_time(tmp_path):
    cache = TemplateCache(make_environment(), tmp_path)
    for _ in range(2):
        with pytest.raises(jinja2.TemplateSyntaxError):
            cache.from_string("{% if %}")
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_file_is_compiled_again_and_replaced(tmp_path, monkeypatch):
    TemplateCache(make_environment(), tmp_path).from_string("{{ 6 * 7 }}")
    (stored,) = tmp_path.glob("*.code")
    stored.write_bytes(b"not marshal")
    seen = compiles(monkeypatch)
    assert TemplateCache(make_environment(), tmp_path).from_string("{{ 6 * 7 }}").render() == "42"
    assert seen == ["{{ 6 * 7 }}"] and stored.read_bytes() != b"not marshal"


def test_another_environment_setting_is_another_entry(tmp_path):
    TemplateCache(make_environment(), tmp_path).from_string("{{ x }}")
    other = make_environment()
    other.trim_blocks = True
    TemplateCache(other, tmp_path).from_string("{{ x }}")
    assert len(list(tmp_path.glob("*.code"))) == 2
