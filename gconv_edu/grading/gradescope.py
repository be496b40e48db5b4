"""``gconv-edu gradescope build ZIP [--exercises ex1 ex2 ...]``: a Gradescope autograder zip.

The zip holds, at its top: ``setup.sh`` (Gradescope runs it once, as root, when it builds the image: installs this
package from the wheel inside the zip, numpy/numba/pytest from PyPI, creates the unprivileged user
``gconv-student`` and makes the installed grader readable by root only), ``run_autograder`` (grades
``/autograder/submission/``, files at any depth, notebooks included, into ``/autograder/results/results.json``,
with the student's code run as ``gconv-student``, which can read neither the grader's package, nor
``/autograder/source``, nor the results), the wheel, and ``gconv_grade.json`` (the exercises graded).

No reference solution goes into the zip: grading compares with gconv_edu's own float64 reference. The scripts read
``GCONV_AUTOGRADER_ROOT`` (default ``/autograder``) and ``GCONV_PYTHON`` (default ``python3``), so that a test can run
them in a simulated layout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .exercises import EXERCISES, PACKAGE_DIR

STUDENT_USER = "gconv-student"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (gconv-edu gradescope build made it).
set -euo pipefail
AUTOGRADER=${GCONV_AUTOGRADER_ROOT:-/autograder}
PYTHON=${GCONV_PYTHON:-python3}
cd "$AUTOGRADER/source"
# The grader and what it needs (numpy, numba, pytest, ...: from PyPI); nothing else of the zip is installed.
"$PYTHON" -m pip install --quiet --disable-pip-version-check ./*.whl
# The student's code runs as this user: no home, no login, no group of the grader's.
if [ "$(id -u)" = 0 ] && ! id -u __USER__ >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin __USER__
fi
# The installed grader (its cases and tests) is root's alone; Python and NumPy stay readable to everyone.
PACKAGE=$("$PYTHON" -c 'import gconv_edu, os; print(os.path.dirname(gconv_edu.__file__))')
chmod -R go-rwx "$PACKAGE"
# Fail the image build, not 300 submissions: the student's user must be able to run this Python with NumPy.
if [ "$(id -u)" = 0 ]; then
    "$PYTHON" -c 'import sys; from gconv_edu.grading.cli import run_as_problem as p; m = p(sys.argv[1]); sys.exit(m)' \
        __USER__
fi
"$PYTHON" -m gconv_edu --version
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission, as root (gconv-edu gradescope build made it).
set -uo pipefail
AUTOGRADER=${GCONV_AUTOGRADER_ROOT:-/autograder}
PYTHON=${GCONV_PYTHON:-python3}
EXERCISES=$("$PYTHON" -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["exercises"]))' \\
    "$AUTOGRADER/source/gconv_grade.json")
mkdir -p "$AUTOGRADER/results"
# The student's user may enter /autograder and read the submission; never the source (the wheel) or the results.
chmod 711 "$AUTOGRADER"
chmod 700 "$AUTOGRADER/source" "$AUTOGRADER/results"
chmod -R a+rX "$AUTOGRADER/submission"
RUN_AS=()
if [ "$(id -u)" = 0 ] && id -u __USER__ >/dev/null 2>&1; then
    RUN_AS=(--run-as __USER__)
fi
cd "$AUTOGRADER/results"
# shellcheck disable=SC2086
"$PYTHON" -m gconv_edu grade "$AUTOGRADER/submission" --exercises $EXERCISES "${RUN_AS[@]}" \\
    --gradescope "$AUTOGRADER/results/results.json" --json "$AUTOGRADER/results/grading.json"
# Instructors only (stdout is hidden from students): the seed that replays this run's hidden cases.
"$PYTHON" -c 'import json, sys; print("hidden cases seed:", json.load(open(sys.argv[1]))["seed"])' \\
    "$AUTOGRADER/results/grading.json" || true
"""


def checkout_root() -> Path:
    """The repository this package runs from (the zip's wheel is built from it); SystemExit when installed."""
    root = PACKAGE_DIR.parents[1]
    if not (root / "pyproject.toml").is_file():
        raise SystemExit(
            "gconv-edu gradescope build: run it from a checkout of the repository (pip install -e .): the zip's wheel "
            "is built from the source"
        )
    return root


def build_wheel(root: Path, folder: Path) -> Path:
    """``pip wheel`` of a clean copy of the checkout into ``folder`` (no dependencies: Gradescope's pip fetches
    those). A copy: a stale ``build/`` folder in the checkout could put old files in the wheel. The wheel is refused
    if it holds anything that looks like a reference solution."""
    import shutil

    source = folder / "source"
    skipped = shutil.ignore_patterns(
        ".git", ".venv*", ".ci-venv", "build", "dist", "*.egg-info", "__pycache__", "_lessons", "tests", "instructor"
    )
    shutil.copytree(root, source, ignore=skipped)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder)]
    subprocess.run([*command, str(source)], check=True, capture_output=True, text=True)
    (wheel,) = folder.glob("gconv_edu-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        leaked = [name for name in archive.namelist() if "solution" in name.lower()]
    if leaked:
        raise SystemExit(f"gconv-edu gradescope build: the wheel holds {leaked[0]}: solutions must not ship")
    return wheel


def build(zip_path: str | Path, exercises: list[str] | None = None) -> Path:
    """Write the autograder zip (see the module docstring); returns its path."""
    exercises = exercises or list(EXERCISES)
    target = Path(zip_path)
    with tempfile.TemporaryDirectory(prefix="gconv-gradescope-") as folder:
        wheel = build_wheel(checkout_root(), Path(folder))
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o755 << 16  # executable, as Gradescope expects
                archive.writestr(info, text.replace("__USER__", STUDENT_USER))
            archive.writestr("gconv_grade.json", json.dumps({"exercises": exercises}) + "\n")
            archive.write(wheel, wheel.name)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gconv-edu gradescope", description="Gradescope autograder builds.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="write a Gradescope autograder zip (setup.sh and run_autograder at its top)")
    make.add_argument("zip", metavar="ZIP", help="where to write it, e.g. autograder.zip")
    make.add_argument("--exercises", nargs="+", metavar="exN", help="the exercises it grades (default: all six)")
    args = parser.parse_args(argv)
    unknown = [key for key in args.exercises or [] if key not in EXERCISES]
    if unknown:
        parser.error(f"--exercises: unknown {', '.join(unknown)} (known: {', '.join(EXERCISES)})")
    from .cli import writable_file

    problem = writable_file("ZIP", args.zip)
    if problem:
        parser.error(problem)
    path = build(args.zip, args.exercises)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB): upload it as the assignment's autograder")
    return 0
