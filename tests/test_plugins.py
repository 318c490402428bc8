"""Plugins: an installed package adds engines, UDFs, exporters and template globals through entry points,
found the way `importlib.metadata` finds any installed package's; built-ins go through the same lookup;
importing prefclean registers nothing and installs no signal handler.

The test package is installed the way pip leaves one: a module and its `*.dist-info` (METADATA and
entry_points.txt) in a directory on the interpreter's path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import yaml

from judge_fixtures import REPO, judge_config

HOUSE_JUDGE = '''
"""A company's own judge engine (the OpenAI-compatible one under its own name), a judge task with its own
prompt template, a UDF, an exporter and a template global."""
from pathlib import Path

import pyarrow.compute as pc

from prefclean import udf
from prefclean.judge.engines.openai import OpenAIEngine
from prefclean.judge.tasks import Prompt, UltraFeedback


class HouseJudge(OpenAIEngine):
    kind = "house-judge"

    def describe(self):
        return f"house judge {self.model}"


@udf(params=["VARCHAR"], returns="VARCHAR")
def shout(texts):
    return pc.utf8_upper(texts)


class HouseRubric(UltraFeedback):
    name = "house-rubric"
    templates = ("house_rubric.jinja",)
    templates_dir = Path(__file__).parent / "house_templates"

    def prompt(self, instruction, generations, aspect, reference):
        text = self.render("house_rubric.jinja", instruction=instruction, generations=generations)
        return Prompt([{"role": "user", "content": text}], len(generations))


def export_tsv(con, project, export, rel):
    path = project.root / "out.tsv"
    rows = con.execute(f"select * from {rel} order by all").fetchall()
    path.write_text("".join("\\t".join(map(str, row)) + "\\n" for row in rows))
    return f"{len(rows)} rows -> out.tsv"


def house_style(column):
    return f"trim({column})"
'''


def install(site: Path, name: str, module: str, entry_points: dict[str, dict[str, str]], files=None) -> None:
    """What `pip install` leaves: the module (and its data files) and its dist-info, on a path directory."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name.replace('-', '_')}.py").write_text(module)
    for rel, text in (files or {}).items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in names.items()) + "\n"
        for group, names in entry_points.items()))


def prefclean(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "PREFCLEAN_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "prefclean.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


HOUSE_ENTRY_POINTS = {
    "prefclean.engines": {"house-judge": "house_judge:HouseJudge"},
    "prefclean.tasks": {"house-rubric": "house_judge:HouseRubric"},
    "prefclean.udfs": {"shout": "house_judge:shout"},
    "prefclean.exporters": {"tsv": "house_judge:export_tsv"},
    "prefclean.template_globals": {"house_style": "house_judge:house_style"},
}


HOUSE_TEMPLATE = """HOUSE RUBRIC for {{ instruction }}
{% for g in generations %}<text {{ loop.index }}>
{{ g }}
</text {{ loop.index }}>
{% endfor %}"""


def test_an_installed_packages_engine_task_udf_exporter_and_template_global_are_found_and_used(
        make_project, fake_judge, tmp_path):
    site = tmp_path / "site-packages"
    install(site, "house-judge", HOUSE_JUDGE, HOUSE_ENTRY_POINTS,
            files={"house_templates/house_rubric.jinja": HOUSE_TEMPLATE})
    fake_judge.control(record_prompts=True)
    rows = [{"id": i, "instruction": f" question {i} ", "generations": [f"a [[rate=5]] {i}", f"b [[rate=1]] {i}"]}
            for i in range(3)]
    model = """{{ config(materialized='table') }}
select id, shout({{ house_style('instruction') }}) as loud,
       {{ judge('instruction', 'generations', judge='house') }} as j,
       {{ judge('instruction', 'generations', judge='house', task='house-rubric') }} as h
from {{ source('pairs') }}"""
    root = make_project(config={
        "name": "plugged", "sources": {"pairs": {"type": "inline", "rows": rows}},
        "judges": {"house": {**judge_config(fake_judge), "engine": "house-judge"}},
        "exports": {"t": {"model": "judged", "target": "tsv"}}}, models={"judged": model})
    out = prefclean(site, "build", "--project-dir", str(root))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("judge house (house judge fake-judge): judged 3, failed 0") == 2, out.stdout  # per task
    assert "export t OK: 3 rows -> out.tsv" in out.stdout, out.stdout
    stats = fake_judge.stats()
    assert stats["requests"] == 6
    assert sum(p.startswith("HOUSE RUBRIC for  question ") for p in stats["prompts"]) == 3, stats["prompts"]
    con = duckdb.connect(str(root / "target" / "prefclean.duckdb"), read_only=True)
    assert con.execute("select loud, j.ratings, h.ratings, h.task from judged order by id").fetchall() == [
        (f"QUESTION {i}", [5, 1], [5, 1], "house-rubric") for i in range(3)]
    con.close()
    con = duckdb.connect(str(root / "target" / "judgments.duckdb"), read_only=True)
    assert con.execute("select distinct engine from judgments").fetchall() == [("house-judge",)]
    con.close()
    assert (root / "out.tsv").read_text().count("\n") == 3


def test_a_name_defined_by_prefclean_and_by_a_package_is_an_error_naming_both(make_project, tmp_path):
    site = tmp_path / "site-packages"
    install(site, "shadow", "def judge(*args):\n    return '1'\n", {"prefclean.template_globals": {"judge": "shadow:judge"}})
    root = make_project(models={"m": "select 1 as x"})
    out = prefclean(site, "build", "--project-dir", str(root))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip() == ("error: template global 'judge' is defined twice: by prefclean and by shadow "
                                  "(entry point group prefclean.template_globals); uninstall or rename one"), out
    assert "Traceback" not in out.stdout + out.stderr


def test_a_package_whose_engine_does_not_load_fails_its_judges_model_with_one_line(make_project, fake_judge,
                                                                                 tmp_path):
    site = tmp_path / "site-packages"
    install(site, "broken-judge", "import no_such_client_library\n",
            {"prefclean.engines": {"broken": "broken_judge:Engine"}})
    root = make_project(config={
        "sources": {"pairs": {"type": "inline", "rows": [{"id": 1, "instruction": "q", "generations": ["a"]}]}},
        "judges": {"b": {**judge_config(fake_judge), "engine": "broken"}}},
        models={"judged": "{{ config(materialized='table') }} "
                "select {{ judge('instruction', 'generations', judge='b') }} as j from {{ source('pairs') }}"})
    out = prefclean(site, "build", "--project-dir", str(root))
    assert out.returncode == 1, out.stdout + out.stderr
    assert ("judge 'b': the broken engine (from broken-judge) cannot load: ModuleNotFoundError: "
            "No module named 'no_such_client_library'") in out.stdout, out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_importing_prefclean_registers_nothing_and_installs_no_signal_handler():
    script = textwrap.dedent("""
        import signal, sys
        before = signal.getsignal(signal.SIGINT)
        import prefclean, prefclean.compiler, prefclean.udf, prefclean.runner, prefclean.cli
        import prefclean.judge.udf, prefclean.export
        assert signal.getsignal(signal.SIGINT) is before, "importing installed a SIGINT handler"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "ok", out.stdout + out.stderr
    script = textwrap.dedent("""
        import sys
        import prefclean, prefclean.compiler, prefclean.udf, prefclean.plugins, prefclean.runner
        listed = {v.split(":")[0] for group in prefclean.plugins.BUILTIN.values() for v in group.values()}
        print(sorted(listed & set(sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr  # the registries import nothing they list


def test_a_build_installs_its_sigint_handler_only_while_it_runs(make_project, run_cli):
    """The judge's threads learn of Ctrl-C through a handler the build installs, chained to the one in
    place; after the build the previous handler is back."""
    import signal

    probe = '''
import signal
import pyarrow as pa
from prefclean import udf

seen = []

@udf(params=["INTEGER"], returns="BOOLEAN")
def sigint_is_prefclean(xs):
    seen.append(getattr(signal.getsignal(signal.SIGINT), "prefclean_build", False))
    return pa.array([seen[-1]] * len(xs))
'''
    root = make_project(models={"m": "{{ config(materialized='table') }} select sigint_is_prefclean(1) as p"},
                        udfs={"probe": probe})

    def mine(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, mine)
    try:
        result = run_cli("build", "--project-dir", root)
        assert result.exit_code == 0, result
        assert sys.modules["prefclean_project_udfs.probe"].seen == [True]
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)
