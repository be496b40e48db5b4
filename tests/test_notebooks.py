"""Every lesson runs as a notebook, alone in an empty folder, and every figure it saves also shows inline.

Each test writes one lesson with ``gconv-edu lessons N --notebooks DIR`` into its own empty temporary folder and
executes it there with nbclient (the engine of ``jupyter nbconvert --execute`` and of VS Code's export), in fast mode
(``GCONV_LESSONS_FAST=1``), figures into a temporary ``GCONV_FIGURES_DIR``. One test per lesson and no shared state,
so ``pytest -n`` (pytest-xdist) can spread them over cores. Skipped without the notebook extra.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gconv_edu.cli import main

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NAMES = sorted(p.stem for p in LESSONS.glob("[0-9][0-9]_*.py"))


def _execute(notebook_path: Path) -> object:
    """Execute the notebook in place in its own folder (as Jupyter would) and return it."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(notebook_path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(notebook_path.parent)}}
    )
    client.execute()
    nbformat.write(notebook, notebook_path)
    return notebook


def inline_images(cell: object) -> int:
    """PNG images a code cell shows (display_data or execute_result outputs)."""
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def saved_figures(cell: object) -> list[str]:
    """Names of the figures a cell saved, from the ``[figure] PATH`` lines viz.save prints."""
    lines = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    return [Path(line.split(maxsplit=1)[1]).name for line in lines.splitlines() if line.startswith("[figure] ")]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", NAMES)
def test_lesson_runs_as_a_notebook_alone_and_shows_every_saved_figure_inline(name, tmp_path, monkeypatch):
    pytest.importorskip("jupytext")
    folder = tmp_path / "alone"
    figures = tmp_path / "figures"
    monkeypatch.setenv("GCONV_LESSONS_FAST", "1")
    monkeypatch.setenv("GCONV_FIGURES_DIR", str(figures))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own (inline) backend, as in Jupyter
    monkeypatch.delenv("GCONV_LESSONS_DIR", raising=False)
    assert main(["lessons", name[:2], "--notebooks", str(folder)]) == 0
    notebook_path = folder / f"{name}.ipynb"
    assert sorted(folder.iterdir()) == [notebook_path]  # nothing beside it: no lessons/_common, no helpers

    notebook = _execute(notebook_path)

    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    saved = [figure for cell in code_cells for figure in saved_figures(cell)]
    assert saved, f"{name} saved no figure"
    assert sorted(p.name for p in figures.glob("*.png")) == sorted(saved)
    for cell in code_cells:
        # Each figure a cell saves shows in that same cell: viz.save displays it before closing it.
        assert inline_images(cell) == len(saved_figures(cell)), f"{name}: cell\n{cell.source[:300]}"
    print(f"{name}: {len(saved)} figures saved, {sum(map(inline_images, code_cells))} inline", file=sys.stderr)
