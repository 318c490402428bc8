"""The Python API in a real Jupyter kernel (ipykernel, driven by nbclient): the kernel's event loop is
running while a cell calls prefclean.build(), and tqdm.auto's bars go to the cell's output."""

from __future__ import annotations

import os

import pytest
from judge_fixtures import judge_project

nbformat = pytest.importorskip("nbformat", reason="pip install nbclient ipykernel (the dev extra)")
nbclient = pytest.importorskip("nbclient", reason="pip install nbclient ipykernel (the dev extra)")
pytest.importorskip("ipykernel", reason="pip install nbclient ipykernel (the dev extra)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cells(*sources: str) -> list:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    # this checkout first: the kernel is a new process
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute(env=env)
    return notebook.cells


def text(cell) -> str:
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_build_runs_in_a_jupyter_cell_with_progress_bars(make_project, fake_judge):
    rows = [{"id": i, "instruction": f"question {i}", "generations": [f"a{i} [[rate=4]]", f"b{i} [[rate=2]]"]}
            for i in range(3)]
    root = judge_project(make_project, fake_judge, rows)
    cells = run_cells(
        "import asyncio\nasyncio.get_running_loop().is_running()",
        f"import prefclean\nresult = prefclean.build({str(root)!r})\n"
        "result.ok, [(m.name, m.rows) for m in result.models], result.judging.judged",
        f"prefclean.sql(prefclean.load_project({str(root)!r}), 'select count(*) as n from judged').to_pylist()")
    assert text(cells[0]).strip() == "True"  # the kernel's loop is running, as in every notebook
    built = text(cells[1])
    assert "(True, [('judged', 3)], 3)" in built, built
    assert "judge fake" in built and "models" in built, built  # tqdm.auto's bars, in the cell's output
    assert "[{'n': 3}]" in text(cells[2])
    assert fake_judge.stats()["requests"] == 3
