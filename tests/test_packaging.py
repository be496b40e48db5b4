"""The distributions: the sdist builds the wheel and ships no tests; the wheel runs the course from any folder.

Built as ``python -m build`` does (sdist first, then the wheel from the unpacked sdist) but without build isolation,
with this environment's setuptools, so that no network is needed. The installed-copy checks put the wheel's files on
PYTHONPATH (``pip install --target``) and run from another folder; .ci/run does the same with a fresh venv and the
console script.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def lesson_sources() -> dict[str, bytes]:
    """What the wheel must ship from lessons/: every file but caches and notebooks, by path relative to lessons/."""
    files = {}
    for path in sorted(LESSONS.rglob("*")):
        relative = path.relative_to(LESSONS)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix not in (".pyc", ".ipynb"):
            files[relative.as_posix()] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """sdist and wheel, the wheel built from the unpacked sdist."""
    out = tmp_path_factory.mktemp("dist")
    code = f"from setuptools import build_meta as b; print(b.build_sdist({str(out)!r}))"
    sdist = out / _run([sys.executable, "-c", code], cwd=ROOT).stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # 3.10.12+, 3.11.4+
        archive.extractall(out / "unpacked", **safe)
    (source,) = (out / "unpacked").iterdir()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)])
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel, "out": out}


@pytest.mark.slow
def test_sdist_ships_the_build_sources_and_no_tests(dists):
    with tarfile.open(dists["sdist"]) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    for needed in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "gconv_edu/cli.py"):
        assert needed in names, needed
    assert {f"lessons/{name}" for name in lesson_sources()} <= set(names)
    assert any(name.startswith("gconv_edu/backends/kernels/") and name.endswith(".cu") for name in names)
    # No tests (they need the checkout: README, instructor/, wrong solutions), no solutions, no build debris.
    for name in names:
        assert not name.startswith(("tests/", "instructor/", "gconv_edu/_lessons/", "build/")), name
        assert "__pycache__" not in name and "solutions/" not in name, name


@pytest.mark.slow
def test_wheel_ships_the_lessons_and_stubs_and_no_solution(dists):
    from gconv_edu.grading.exercises import EXERCISES

    with zipfile.ZipFile(dists["wheel"]) as archive:
        names = archive.namelist()
        shipped = {n.removeprefix("gconv_edu/_lessons/"): archive.read(n) for n in names if "/_lessons/" in n}
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert shipped == lesson_sources()  # byte for byte, one source
    for exercise in EXERCISES.values():
        assert f"exercises/{exercise.stub}" in shipped, exercise.stub
    for name in names:
        assert "solution" not in name.lower() and not name.startswith(("instructor/", "tests/")), name
        assert "__pycache__" not in name, name
    assert any(n.startswith("gconv_edu/backends/kernels/") and n.endswith(".cu") for n in names)
    assert "gconv_edu/__main__.py" in names
    assert "gconv-edu = gconv_edu.cli:main" in entry_points
    assert "License-Expression: MIT" in metadata
    for extra in ("notebook", "gpu-cuda12", "gpu-cuda13", "gpu"):
        assert f"Provides-Extra: {extra}" in metadata


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_installed_wheel_runs_the_course_from_another_folder(dists, tmp_path):
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(dists["wheel"])])
    work = tmp_path / "anywhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCONV_")}
    env.update(PYTHONPATH=str(site), GCONV_BACKEND="im2col")  # im2col: no Numba compile in this test

    def gconv(*args: str) -> subprocess.CompletedProcess:
        return _run([sys.executable, "-m", "gconv_edu", *args], cwd=work, env=env)

    where = _run([sys.executable, "-c", "import gconv_edu; print(gconv_edu.__file__)"], cwd=work, env=env)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout  # the wheel's copy, not the checkout
    assert gconv("--version").stdout.strip().startswith("gconv-edu ")
    listed = gconv("lessons", "--list").stdout.split()
    assert listed == sorted(p.name for p in LESSONS.glob("[0-9][0-9]_*.py"))
    run = gconv("lessons", "02", "--fast")
    assert "02_channels_into_groups.py" in run.stdout and "ok" in run.stdout.splitlines()[-2]
    assert sorted(p.name for p in (work / "figures").iterdir()) == [
        "02_block_diagonal_weight.png",
        "02_filter_slabs.png",
        "02_group_connections.png",
    ]
    assert not list(site.rglob("*.png"))  # nothing written into the installed package
    gconv("course", "mine")
    assert sorted(p.name for p in (work / "mine").glob("*.py")) == listed
    assert (work / "mine" / "exercises" / "README.md").is_file()
