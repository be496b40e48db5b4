"""Lessons 01-09 run headless in fast mode and write every figure they promise; the viz helpers they share.

Each lesson runs as its own process (as ``gconv-edu lessons`` runs it) with ``MPLBACKEND=Agg``, ``cwd=lessons/``,
``GCONV_LESSONS_FAST=1`` and a temporary ``GCONV_FIGURES_DIR``. A lesson's own assertions (naive == im2col, grouped ==
block-diagonal dense, gradcheck, ...) make it exit non-zero when a step is wrong, so a passing run means every printed
check held. Lesson 10 is tested in test_experiment.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from gconv_edu import viz

LESSONS = Path(__file__).resolve().parents[1] / "lessons"

EXPECTED_FIGURES = {
    "01_convolution_step_by_step.py": ["01_sliding_window.png"],
    "02_channels_into_groups.py": [
        "02_group_connections.png",
        "02_filter_slabs.png",
        "02_block_diagonal_weight.png",
    ],
    "03_what_groups_buy.py": ["03_cost_vs_groups.png", "03_resnext_equal_complexity.png"],
    "04_im2col.py": ["04_im2col_unfolding.png", "04_im2col_gemm.png", "04_im2col_workspace.png"],
    "05_backprop_by_hand.py": ["05_strided_backward.png", "05_gradients_stay_in_group.png"],
    "06_depthwise_separable_and_shuffle.py": [
        "06_channel_shuffle.png",
        "06_mobilenet_tradeoff.png",
        "06_shufflenet_g2.png",
    ],
    "07_backends_and_speed.py": ["07_roofline.png"],
    "08_alexnet_two_devices.py": ["08_two_towers.png", "08_two_devices.png"],
    "09_do_groups_specialise_setup.py": ["09_specialisation_baselines.png"],
    # 10 (the experiment) has its own tests: tests/test_experiment.py
    "11_fast_convolution_winograd.py": ["11_transform_matrices.png", "11_error_and_speed.png"],
}
OWN_TESTS = {"10_do_groups_specialise.py"}


def run_lesson(name: str, figures: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", GCONV_LESSONS_FAST="1", GCONV_FIGURES_DIR=str(figures))
    return subprocess.run(
        [sys.executable, str(LESSONS / name)], cwd=LESSONS, env=env, capture_output=True, text=True, timeout=240
    )


def test_every_numbered_lesson_is_covered():
    on_disk = sorted(p.name for p in LESSONS.glob("[0-9][0-9]_*.py") if p.name not in OWN_TESTS)
    assert on_disk == sorted(EXPECTED_FIGURES), "a lesson was added or renamed: list its figures in EXPECTED_FIGURES"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_lesson_runs_fast_and_writes_its_figures(name, tmp_path):
    result = run_lesson(name, tmp_path)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "check:" in result.stdout, f"{name} printed no checks"
    assert "FAILED" not in result.stdout
    # Every lesson ends by pointing to the exercise it prepares for, with the command that grades it.
    assert "gconv-edu grade lessons/exercises/ex" in result.stdout.splitlines()[-1]
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == sorted(EXPECTED_FIGURES[name]), f"{name} wrote {written}"
    for figure in EXPECTED_FIGURES[name]:
        path = tmp_path / figure
        assert path.stat().st_size > 20_000, f"{figure} is only {path.stat().st_size} bytes"
        pixels = matplotlib.image.imread(path)
        height, width = pixels.shape[:2]
        assert height >= 300 and width >= 600, f"{figure} is {width}x{height} pixels"
        # Not blank: a drawn figure has many distinct colours and is far from uniform.
        assert np.std(pixels[..., :3]) > 0.05, f"{figure} looks blank"


def test_lessons_are_jupytext_percent_notebooks():
    for name in EXPECTED_FIGURES:
        text = (LESSONS / name).read_text()
        assert text.startswith("# %% [markdown]"), f"{name} must open with a markdown cell"
        assert text.count("\n# %%\n") >= 3, f"{name} needs code cells"


def test_lessons_open_as_notebooks_with_prose_and_code():
    jupytext = pytest.importorskip("jupytext")  # a tool for readers, not a dependency of the package
    for name in EXPECTED_FIGURES:
        notebook = jupytext.reads((LESSONS / name).read_text(), fmt="py:percent")
        kinds = [cell.cell_type for cell in notebook.cells]
        assert kinds.count("markdown") >= 3 and kinds.count("code") >= 3, f"{name}: cells {kinds}"
        code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
        compile(code, name, "exec")  # the notebook's code cells, in order, are valid Python


# --------------------------------------------------------------------------- viz helpers
def test_group_colours_are_stable_distinct_and_cycle():
    first = [viz.group_color(g) for g in range(len(viz.PALETTE))]
    assert len(set(first)) == len(viz.PALETTE)  # every group of the first eight has its own colour
    assert viz.group_color(len(viz.PALETTE)) == viz.group_color(0)  # then they repeat
    assert viz.channel_colors(6, 3) == [first[0]] * 2 + [first[1]] * 2 + [first[2]] * 2


def test_connection_matrix_is_block_diagonal():
    links = viz.connection_matrix(in_channels=6, out_channels=4, groups=2)
    assert links.shape == (4, 6)
    expected = np.zeros((4, 6), dtype=bool)
    expected[:2, :3] = True
    expected[2:, 3:] = True
    np.testing.assert_array_equal(links, expected)


def test_figures_dir_and_fast_mode_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GCONV_FIGURES_DIR", str(tmp_path / "out"))
    assert viz.figures_dir() == tmp_path / "out" and (tmp_path / "out").is_dir()
    monkeypatch.delenv("GCONV_FIGURES_DIR")
    assert viz.figures_dir() == Path(viz.__file__).resolve().parents[1] / "figures"
    monkeypatch.setenv("GCONV_LESSONS_FAST", "0")
    assert not viz.fast_mode()
    monkeypatch.setenv("GCONV_LESSONS_FAST", "1")
    assert viz.fast_mode()


def test_save_writes_a_png_and_rejects_other_names(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("GCONV_FIGURES_DIR", str(tmp_path))
    fig, ax = plt.subplots()
    viz.draw_connections(ax, 4, 4, 2, title="test")
    path = viz.save(fig, "x.png")
    assert path == tmp_path / "x.png" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match=r"name='x\.svg'"):
        viz.save(plt.figure(), "x.svg")


def test_save_shows_the_figure_inline_in_a_kernel_before_closing_it(tmp_path, monkeypatch):
    """In a Jupyter kernel viz.save displays the figure (then closes it); in a script it only writes it."""
    import types

    import matplotlib.pyplot as plt

    shown = []
    display_module = types.ModuleType("IPython.display")
    display_module.display = lambda fig: shown.append((fig, plt.fignum_exists(fig.number)))
    ipython = types.ModuleType("IPython")
    ipython.display = display_module
    ipython.get_ipython = lambda: None  # a plain script (or terminal IPython): no kernel
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)
    monkeypatch.setenv("GCONV_FIGURES_DIR", str(tmp_path))
    viz.save(plt.figure(), "script.png")
    assert shown == [] and not viz.in_notebook_kernel()
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # what ipykernel's shell has
    fig = plt.figure()
    viz.save(fig, "kernel.png")
    assert shown == [(fig, True)]  # displayed while still open
    assert not plt.fignum_exists(fig.number) and (tmp_path / "kernel.png").is_file()
