"""The Gradescope build end to end: ``gconv-edu gradescope build`` makes the zip; its setup.sh installs it into a
fresh venv in a simulated ``/autograder`` layout (the root is configurable); run_autograder grades two submissions.
Correct files score full marks, a wrong one does not, and a file that reads the grader's installed files does not
(as root, the student's code runs as the unprivileged user that setup.sh creates)."""

from __future__ import annotations

import json
import os
import re
import shutil
import site
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


def _runs_as_nobody(python: str) -> bool:
    try:
        probe = subprocess.run([python, "-I", "-c", "pass"], user="nobody", cwd="/", capture_output=True, timeout=60)
    except OSError:  # e.g. PermissionError: a folder on its path is closed to that user
        return False
    return probe.returncode == 0


def _base_python() -> str:
    """The interpreter for the simulated image's venv. As root, the student's user must be able to run it (as on
    Gradescope's image, /usr/bin/python3): a pyenv Python under root's 0700 home is out of its reach, and setup.sh
    refuses it (tested in test_setup_refuses_a_python_the_student_cannot_run)."""
    if not IS_ROOT or _runs_as_nobody(sys.executable):
        return sys.executable
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists() and _runs_as_nobody(candidate):
            return candidate
    pytest.skip("as root, no Python that an unprivileged user can run (for the student's user)")


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
        subprocess.run([_base_python(), "-m", "venv", str(base / "venv")], check=True, timeout=300)
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
    # The hidden cases' seed is for the instructor's eyes (hidden stdout), not students' (visible cases print
    # their own fixed seeds on purpose).
    seed = re.search(r"hidden cases seed: (\d+)", run.stdout).group(1)
    text = json.dumps(results)
    assert not re.search(rf"\b{seed}\b", text), text[max(0, text.find(seed) - 300) : text.find(seed) + 100]
    assert "hidden" not in text or "seed" not in "".join(t["output"] for t in results["tests"] if "hidden" in t["name"])
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
        # The file found no readable grader (isfile is False on a folder it cannot enter) or hit PermissionError.
        outputs = [t["output"] for t in first["tests"] if t["name"].startswith("ex2:")]
        assert all("PermissionError" in o or "grader not found" in o for o in outputs), outputs[:4]
        (installed,) = (autograder[0].parent / "venv").glob("lib/python3*/site-packages/gconv_edu")
        assert installed.stat().st_mode & 0o077 == 0  # root's alone, as setup.sh made it
    second = _run(
        autograder,
        {"Ex5-shuffle (1).py": WRONG / "ex5_wrong_shuffle_order.py", "ex2_groups.py": SOLUTIONS_DIR / "ex2_groups.py"},
    )
    assert _score(second, "ex2:") == (10, 10)
    assert _score(second, "ex5:")[0] < 10
    assert second["score"] == pytest.approx(sum(t["score"] for t in second["tests"]))


def test_run_as_is_checked_before_grading(tmp_path):
    """--run-as names a user who can run this Python with NumPy, or grade exits 2 before grading anything (a
    whole course graded zero because the student's user cannot start the interpreter is the failure it prevents)."""
    from gconv_edu.grading.cli import run_as_problem

    stub = tmp_path / "ex2_groups.py"
    stub.write_text("def split_channels(x, groups):\n    return x\n")
    run = subprocess.run(
        [sys.executable, "-m", "gconv_edu", "grade", str(stub), "--run-as", "gconv-no-such-user"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    if not IS_ROOT:
        assert "needs root" in run.stderr
        return
    assert "no such user" in run.stderr
    problem = run_as_problem("nobody")
    if _runs_as_nobody(sys.executable):
        assert problem is None
    else:
        assert "cannot run this Python" in problem and sys.executable in problem


@pytest.mark.slow
@pytest.mark.skipif(not IS_ROOT, reason="setup.sh creates a user and checks it only as root")
def test_setup_refuses_a_python_the_student_cannot_run(tmp_path):
    """setup.sh fails the image build when the student's user cannot run the interpreter (checked with a Python
    made unreachable on purpose: a venv inside a 0700 folder)."""
    from gconv_edu.grading.gradescope import SETUP_SH

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(private / "venv")], check=True)
    part = "# Fail" + SETUP_SH.split("# Fail", 1)[1].replace("__USER__", "nobody")
    check = subprocess.run(
        ["bash", "-c", 'set -euo pipefail\nPYTHON="$1"\n' + part, "setup", sys.executable],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0 or "cannot run this Python" in check.stderr
    blocked = subprocess.run(
        ["bash", "-c", 'set -euo pipefail\nPYTHON="$1"\n' + part, "setup", str(private / "venv" / "bin" / "python")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([*site.getsitepackages(), str(ROOT)])},
    )
    assert blocked.returncode != 0 and "cannot run this Python" in blocked.stderr, blocked.stderr[-2000:]
