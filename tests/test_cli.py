"""The command line and the README's own example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gconv_edu as gc
from gconv_edu.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_info_lists_backends_and_threads(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in gc.available_backends():
        assert re.search(rf"^\s+{re.escape(name)}\s+\[\w+\] available", out, re.MULTILINE), out
    assert "threads:" in out and "numpy" in out


def test_info_says_why_a_backend_is_unavailable(capsys, monkeypatch):
    from gconv_edu.backends import REGISTRY, Backend

    monkeypatch.setitem(REGISTRY, "ghost", Backend("ghost", ".ghost_backend", "cpu"))
    main(["info"])
    assert re.search(r"ghost\s+\[cpu\] unavailable: import failed", capsys.readouterr().out)


def test_lessons_list(capsys):
    assert main(["lessons", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names == sorted(names) and all(re.match(r"\d\d_\w+\.py$", n) for n in names)


def test_readme_example_runs():
    """The first python block of the README is executable as written."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "gradcheck ok" in result.stdout


# --------------------------------------------------------------------------- conventions
def _gconv(*args, cwd=None, env=None, **kwargs):
    """``python -m gconv_edu ARGS`` in a fresh process (the console script runs the same main)."""
    return subprocess.run(
        [sys.executable, "-m", "gconv_edu", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_version_and_python_dash_m():
    result = _gconv("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gconv-edu {gc.__version__}"


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (["1"], ["01"]),
        (["01"], ["01"]),
        (["2"], ["02"]),
        (["10"], ["10"]),
        (["11"], ["11"]),
        (["winograd"], ["11"]),
        (["im2col"], ["04"]),
        (["IM2COL.py"], ["04"]),
        (["groups"], ["02", "03", "09", "10"]),
        (["groups_specialise"], ["09", "10"]),
        (["02_channels_into_groups.py"], ["02"]),
        (["10", "1"], ["01", "10"]),  # course order, whatever the order asked
    ],
)
def test_lesson_selection_is_exact(selection, expected, capsys):
    assert main(["lessons", "--list", *selection]) == 0
    assert [name[:2] for name in capsys.readouterr().out.split()] == expected


@pytest.mark.parametrize("selection", [["col"], ["0"], ["99"], ["2", "nothing"], ["group"]])
def test_a_selection_that_matches_nothing_exits_1_listing_the_lessons(selection):
    with pytest.raises(SystemExit) as raised:
        main(["lessons", "--list", *selection])
    message = str(raised.value.code)
    assert "no lesson matches" in message and "04_im2col" in message and "10_do_groups_specialise" in message


def test_unwritable_figures_or_notebooks_folder_is_a_usage_error_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for option in ("--figures", "--notebooks"):
        result = _gconv("lessons", "01", option, str(blocker / "sub"))
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{option} {blocker / 'sub'}: cannot write there" in result.stderr
        assert "Traceback" not in result.stderr and "=====" not in result.stdout  # no lesson started


def test_output_into_a_closed_pipe_ends_quietly():
    """``gconv-edu info | head -1``: the reader goes away; no BrokenPipeError traceback, exit 141 as SIGPIPE."""
    for args in (["info"], ["lessons", "--list"], ["lessons", "--help"], ["grade", "--help"], ["bench", "--help"]):
        reader, writer = os.pipe()
        os.close(reader)  # the "head" has already exited
        process = subprocess.run(
            [sys.executable, "-m", "gconv_edu", *args], stdout=writer, stderr=subprocess.PIPE, text=True, timeout=120
        )
        os.close(writer)
        assert "Traceback" not in process.stderr and "BrokenPipe" not in process.stderr, (args, process.stderr)
        assert process.returncode in (0, 141), (args, process.returncode)


def test_a_lesson_writing_into_a_closed_pipe_ends_quietly(tmp_path):
    reader, writer = os.pipe()
    os.close(reader)
    env = dict(os.environ, GCONV_LESSONS_FAST="1")
    process = subprocess.run(
        [sys.executable, "-m", "gconv_edu", "lessons", "01", "--figures", str(tmp_path)],
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=300,
    )
    os.close(writer)
    assert process.returncode == 141 and "Traceback" not in process.stderr, process.stderr


def test_info_says_when_gconv_backend_is_invalid(capsys, monkeypatch):
    monkeypatch.setenv("GCONV_BACKEND", "bogus")
    assert main(["info"]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("default backend"))
    assert "INVALID" in line and "GCONV_BACKEND='bogus'" in line and "im2col" in line
    monkeypatch.setenv("GCONV_BACKEND", "naive")
    main(["info"])
    assert "default backend: naive (GCONV_BACKEND)" in capsys.readouterr().out


def test_info_and_hints_name_the_installed_cupy_distribution(capsys, monkeypatch):
    import importlib.metadata

    from gconv_edu import arrays, cli

    monkeypatch.setattr(importlib.metadata, "packages_distributions", lambda: {"cupy": ["cupy-cuda13x"]})
    monkeypatch.setattr(cli, "_version", lambda name: "13.6.0" if name == "cupy-cuda13x" else "x")
    assert arrays.cupy_distribution() == "cupy-cuda13x"
    assert arrays.cupy_install_hint("ctk") == "pip install 'cupy-cuda13x[ctk]'"
    main(["info"])
    out = capsys.readouterr().out
    assert re.search(r"^\s+cupy\s+13\.6\.0 \(cupy-cuda13x\)$", out, re.MULTILINE), out
    assert "cupy-cuda12x" not in out
    monkeypatch.setattr(importlib.metadata, "packages_distributions", lambda: {"numpy": ["numpy"]})
    assert arrays.cupy_distribution() is None
    assert "cupy-cuda13x" in arrays.cupy_install_hint("ctk") and "[gpu]" in arrays.cupy_install_hint()


# --------------------------------------------------------------------------- course, notebooks
def test_course_copies_the_lessons_and_stubs_and_never_overwrites(tmp_path, capsys):
    from gconv_edu.grading.exercises import EXERCISES

    target = tmp_path / "my course"
    assert main(["course", str(target)]) == 0
    assert "next: cd" in capsys.readouterr().out
    lessons = sorted(p.name for p in target.glob("[0-9][0-9]_*.py"))
    assert lessons == sorted(p.name for p in (ROOT / "lessons").glob("[0-9][0-9]_*.py"))
    for exercise in EXERCISES.values():
        stub = target / "exercises" / exercise.stub
        assert stub.read_text() == (ROOT / "lessons" / "exercises" / exercise.stub).read_text()
    assert not [p for p in target.rglob("*") if "solution" in p.name.lower() or p.name == "__pycache__"]
    mine = target / "exercises" / min(e.stub for e in EXERCISES.values())
    mine.write_text("# my work\n")
    with pytest.raises(SystemExit) as raised:
        main(["course", str(target)])
    assert raised.value.code == 2
    assert "would overwrite" in capsys.readouterr().err
    assert mine.read_text() == "# my work\n"  # the student's work is kept


def test_notebooks_are_written_as_ipynb_with_every_cell(tmp_path, capsys):
    nbformat = pytest.importorskip("nbformat")
    jupytext = pytest.importorskip("jupytext")
    assert main(["lessons", "2", "im2col", "--notebooks", str(tmp_path / "nb")]) == 0
    written = sorted(p.name for p in (tmp_path / "nb").iterdir())
    assert written == ["02_channels_into_groups.ipynb", "04_im2col.ipynb"]
    for name in written:
        notebook = nbformat.read(tmp_path / "nb" / name, as_version=4)
        nbformat.validate(notebook)
        script = jupytext.read(ROOT / "lessons" / name.replace(".ipynb", ".py"), fmt="py:percent")
        assert [c.source for c in notebook.cells] == [c.source for c in script.cells]
        assert notebook.metadata.kernelspec.name == "python3"


def test_notebooks_without_jupytext_say_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jupytext", None)  # import jupytext now raises ImportError
    with pytest.raises(SystemExit) as raised:
        main(["lessons", "1", "--notebooks", str(tmp_path)])
    assert raised.value.code == 2
    assert not list(tmp_path.glob("*.ipynb"))


def test_lessons_run_from_the_current_folder_and_pass_the_environment_through(tmp_path, monkeypatch):
    """A fake lessons folder: the lesson sees the caller's cwd, GCONV_* variables and the figures folder."""
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "01_probe.py").write_text(
        "import os\nprint('cwd', os.getcwd())\n"
        "for k in ('GCONV_SEEDS', 'GCONV_DATA_SEED', 'GCONV_LESSONS_FAST', 'GCONV_FIGURES_DIR', 'MPLBACKEND'):\n"
        "    print(k, os.environ.get(k))\n"
    )
    (lessons / "02_fails.py").write_text("raise SystemExit(3)\n")
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, GCONV_LESSONS_DIR=str(lessons), GCONV_SEEDS="0,1", GCONV_DATA_SEED="7")
    env.pop("GCONV_FIGURES_DIR", None)
    result = _gconv("lessons", "probe", "--fast", "--figures", "out", cwd=work, env=env)
    assert result.returncode == 0, result.stderr
    for line in (f"cwd {work}", "GCONV_SEEDS 0,1", "GCONV_DATA_SEED 7", "GCONV_LESSONS_FAST 1", "MPLBACKEND Agg"):
        assert line in result.stdout, result.stdout
    assert f"GCONV_FIGURES_DIR {work / 'out'}" in result.stdout
    failed = _gconv("lessons", cwd=work, env=env)
    assert failed.returncode == 1 and "FAILED (exit 3)" in failed.stdout


def test_figures_default_to_the_current_folder_outside_a_checkout(tmp_path, monkeypatch):
    from gconv_edu import course

    monkeypatch.delenv("GCONV_FIGURES_DIR", raising=False)
    assert course.default_figures_dir() == ROOT / "figures"  # this package is a checkout
    monkeypatch.setattr(course, "__file__", str(tmp_path / "site-packages" / "gconv_edu" / "course.py"))
    monkeypatch.chdir(tmp_path)
    assert course.default_figures_dir() == tmp_path / "figures"
    monkeypatch.setenv("GCONV_FIGURES_DIR", str(tmp_path / "mine"))
    assert course.default_figures_dir() == tmp_path / "mine"


# --------------------------------------------------------------------------- numba's first compile
def test_numba_notice_once_per_direction_and_only_for_a_cold_cache(monkeypatch, capsys):
    from gconv_edu import compile_notice

    monkeypatch.setattr(compile_notice, "_checked", set())
    monkeypatch.setattr(compile_notice, "_cache_is_warm", lambda dispatcher: False)
    assert compile_notice.numba_compile_notice("forward") is True
    assert compile_notice.numba_compile_notice("forward") is False  # once per process
    assert compile_notice.numba_compile_notice("backward") is True  # its own kernels, its own line
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "gconv-edu: compiling the numba kernels (forward), about 15 s, once: later runs load them from disk",
        "gconv-edu: compiling the numba kernels (backward), about 30 s, once: later runs load them from disk",
    ]
    monkeypatch.setattr(compile_notice, "_checked", set())
    monkeypatch.setattr(compile_notice, "_cache_is_warm", lambda dispatcher: True)
    assert compile_notice.numba_compile_notice("forward") is False
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="direction='sideways'"):
        compile_notice.numba_compile_notice("sideways")


def test_numba_notice_is_asked_only_about_the_kernels_a_call_uses(monkeypatch):
    """A warm forward cache with a cold backward one: a forward call prints nothing (the bug: it did)."""
    from gconv_edu import compile_notice
    from gconv_edu.backends import numba_cpu

    monkeypatch.setattr(compile_notice, "_checked", set())
    warm = {numba_cpu._forward_kernel}
    monkeypatch.setattr(compile_notice, "_cache_is_warm", lambda dispatcher: dispatcher in warm)
    assert compile_notice.numba_compile_notice("forward") is False
    assert compile_notice.numba_compile_notice("backward") is True


def test_numba_cache_warmth_is_read_from_memory_and_from_disk(tmp_path):
    """A fresh cache=True function: cold before its first call, warm after it, and warm in a new process."""
    (tmp_path / "tiny_kernel.py").write_text(
        "import numba\n\n@numba.njit(cache=True)\ndef twice(x):\n    return 2 * x\n"
    )
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import tiny_kernel\n"
        "from gconv_edu.compile_notice import _cache_is_warm\n"
        "before = _cache_is_warm(tiny_kernel.twice); tiny_kernel.twice(1.0)\n"
        "print(before, _cache_is_warm(tiny_kernel.twice))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
        )
        for _ in range(2)
    ]
    assert [r.stdout.split() for r in runs] == [["False", "True"], ["True", "True"]], [r.stderr for r in runs]


def test_api_announces_compiled_backends_and_names_the_direction(monkeypatch, capsys):
    """The hook sits in conv2d / conv2d_backward (after the backend is chosen): it is asked with the backend and the
    direction; naive has no compiled kernels and prints nothing; im2col's compiled unfold (NumPy arrays) has its own
    line."""
    import numpy as np

    from gconv_edu import api, compile_notice

    calls = []
    monkeypatch.setattr(api, "compile_notice", lambda backend, direction: calls.append((backend, direction)))
    x, weight, dy = np.ones((1, 2, 4, 4)), np.ones((2, 1, 3, 3)), np.ones((1, 2, 2, 2))
    gc.conv2d(x, weight, groups=2, backend="numba")
    gc.conv2d_backward(dy, x, weight, groups=2, backend="im2col")
    assert calls == [("numba", "forward"), ("im2col", "backward")]
    monkeypatch.undo()
    monkeypatch.setattr(compile_notice, "_checked", set())
    monkeypatch.setattr(compile_notice, "_cache_is_warm", lambda dispatcher: False)
    assert compile_notice.compile_notice("naive", "forward") is False
    assert compile_notice.compile_notice("im2col", "backward") is True
    assert capsys.readouterr().err.startswith("gconv-edu: compiling the im2col kernels (backward), about 5 s")
