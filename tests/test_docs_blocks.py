"""dbt's `{% docs %}` blocks in models/*.md used by `description: '{{ doc("name") }}'`: the rendered description in
`prefclean ls --output json`, target/manifest.json and the dashboard's lineage page; an unknown doc is an error."""

from __future__ import annotations

import json

import pytest

from prefclean.errors import EXIT_OK, EXIT_USER_ERROR

DOCS_MD = """# notes for people, outside any block

{% docs orders_doc %}
One row per **order**, <b>deduplicated</b>.
{% enddocs %}

{%- docs order_id -%}
The order's key.
{%- enddocs -%}
"""


def _schema(description='{{ doc("orders_doc") }}', column="{{ doc('order_id') }} (never null)"):
    return {"version": 2, "models": [{"name": "orders", "description": description,
                                      "columns": [{"name": "id", "description": column}]}]}


def _project(make_project, **kw):
    return make_project(models={"orders": "select 1 as id", "plain": "select 2 as id"},
                        files={"models/docs/orders.md": DOCS_MD, "models/schema.yml": _schema(**kw)})


def test_ls_output_json_shows_descriptions_from_docs_blocks(make_project, run_cli):
    root = _project(make_project)
    result = run_cli("ls", "--output", "json", cwd=root)
    assert result.exit_code == EXIT_OK, result
    rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
    assert rows["orders"]["description"] == "One row per **order**, <b>deduplicated</b>."
    assert rows["orders"]["columns"] == {"id": "The order's key. (never null)"}
    assert rows["orders"]["resource_type"] == "model" and rows["orders"]["original_file_path"] == "models/orders.sql"
    assert rows["plain"]["description"] == "" and rows["plain"]["columns"] == {}


def test_the_manifest_holds_the_rendered_description(make_project, run_cli):
    root = _project(make_project)
    assert run_cli("compile", cwd=root).exit_code == EXIT_OK
    model = json.loads((root / "target" / "manifest.json").read_text())["models"]["orders"]
    assert model["description"] == "One row per **order**, <b>deduplicated</b>."
    assert model["columns"]["id"]["description"] == "The order's key. (never null)"


@pytest.mark.parametrize("schema, files, message", [
    ({"description": '{{ doc("order_doc") }}'}, {},
     "models/schema.yml: model 'orders': description uses doc('order_doc'), which no docs block defines; "
     "did you mean 'orders_doc'?"),
    ({"column": "{{ doc('nope') }}"}, {},
     "model 'orders' column id: description uses doc('nope'), which no docs block defines"),
    ({"description": "{{ doc('proj', 'orders_doc') }}"}, {}, "packages are not supported by prefclean"),
    ({"description": "{{ docs('orders_doc') }}"}, {}, "'docs' is undefined"),
    ({}, {"models/more.md": "{% docs orders_doc %}again{% enddocs %}"},
     "models/more.md: docs block 'orders_doc' is also defined in models/docs/orders.md"),
    ({}, {"models/open.md": "{% docs half %}no end"}, "models/open.md: a `{% docs name %}` block without"),
])
def test_docs_mistakes_are_one_line_errors_naming_them(make_project, run_cli, schema, files, message):
    root = _project(make_project, **schema)
    for name, text in files.items():
        (root / name).write_text(text)
    result = run_cli("ls", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert message in result.output and result.exception is None


def test_the_lineage_page_shows_each_models_description(make_project, run_cli):
    from test_dashboard import start_dashboard, stop

    root = _project(make_project)
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    served = start_dashboard(root)
    try:
        status, html, _ = served.get("/lineage")
    finally:
        stop(served)
    assert status == 200
    # On hover (the node's <title>) and in the table, escaped as text.
    assert "<title>orders — One row per **order**, &lt;b&gt;deduplicated&lt;/b&gt;.</title>" in html
    assert '<td class="description">One row per **order**, &lt;b&gt;deduplicated&lt;/b&gt;.</td>' in html
    assert '<td class="description"></td>' in html  # plain has none
