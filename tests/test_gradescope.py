"""The Gradescope build end to end: ``gconv-edu gradescope build`` makes the zip; its setup.sh installs it into a
fresh venv in a simulated ``/autograder`` layout (the root is configurable); run_autograder grades two submissions.
Correct files score full marks, a wrong one does not, and a file that reads the grader's installed files does not
(as root, the student's code runs as the unprivileged user that setup.sh creates)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from gconv_edu.grading.exercises import SOLUTIONS_DIR
from gconv_edu.grading.gradescope import STUDENT_USER, build

ROOT = Path(__file__).resolve().parents[1]
WRONG = ROOT / "tests" / "wrong_solutions"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def autograder():
    """(root, env): the zip unpacked into ROOT/autograder/source and installed by its setup.sh into a fresh venv."""
    base = Path(tempfile.mkdtemp(prefix="gconv-gradescope-test-"))
    os.chmod(base, 0o755)  # the student's user must reach the venv's python and the submission
    try:
        zip_path = build(base / "autograder.zip", ["ex2", "ex5"])
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            assert {"setup.sh", "run_autograder", "gconv_grade.json"} <= set(names)
            assert not [n for n in names if "solution" in n.lower()]
            archive.extractall(base / "autograder" / "source")
        for script in ("setup.sh", "run_autograder"):
            os.chmod(base / "autograder" / "source" / script, 0o755)
        subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True, timeout=300)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GCONV_", "PYTEST_", "VIRTUAL_ENV"))}
        env.update(GCONV_AUTOGRADER_ROOT=str(base / "autograder"), GCONV_PYTHON=str(base / "venv" / "bin" / "python"))
        setup = subprocess.run(
            ["bash", str(base / "autograder" / "source" / "setup.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
        yield base / "autograder", env
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(autograder, files: dict[str, Path]) -> dict:
    root, env = autograder
    submission = root / "submission"
    shutil.rmtree(submission, ignore_errors=True)
    (submission / "nested").mkdir(parents=True)
    for name, source in files.items():
        shutil.copyfile(source, submission / "nested" / name)  # files at any depth
    shutil.rmtree(root / "results", ignore_errors=True)
    run = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "hidden cases seed:" in run.stdout
    results = json.loads((root / "results" / "results.json").read_text())
    assert "seed" not in json.dumps(results)  # the seed is for the instructor's eyes (hidden stdout), not students'
    return results


def _score(results, prefix):
    return round(sum(t["score"] for t in results["tests"] if t["name"].startswith(prefix)), 2), round(
        sum(t["max_score"] for t in results["tests"] if t["name"].startswith(prefix)), 2
    )


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_gradescope_zip_grades_in_a_simulated_layout(autograder):
    first = _run(
        autograder,
        {"ex5_shuffle.py": SOLUTIONS_DIR / "ex5_shuffle.py", "ex2_groups.py": WRONG / "ex2_reads_grader_files.py"},
    )
    assert _score(first, "ex5:") == (10, 10)
    got, out_of = _score(first, "ex2:")
    assert out_of == 10 and (got == 0 if IS_ROOT else True), [t["output"] for t in first["tests"]][:3]
    if IS_ROOT:
        import pwd

        pwd.getpwnam(STUDENT_USER)  # setup.sh made the user
        assert any("PermissionError" in t["output"] for t in first["tests"] if t["name"].startswith("ex2:"))
    second = _run(
        autograder,
        {"Ex5-shuffle (1).py": WRONG / "ex5_wrong_shuffle_order.py", "ex2_groups.py": SOLUTIONS_DIR / "ex2_groups.py"},
    )
    assert _score(second, "ex2:") == (10, 10)
    assert _score(second, "ex5:")[0] < 10
    assert second["score"] == pytest.approx(sum(t["score"] for t in second["tests"]))
