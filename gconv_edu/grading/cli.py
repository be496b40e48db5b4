"""``gconv-edu grade``: grade exercise files, print the table, write Gradescope / JSON results, or self-check.

Each run of pytest grades at most one file per exercise, so the files are split into batches; every batch runs in
its own ``python -m pytest`` process with only this package's plugin loaded (no conftest, no other plugins), and the
student's code runs in worker processes below that. The exit code is 0 whenever grading happened, whatever the
score (``--fail-under`` opts into a non-zero exit for CI); 2 when nothing could be graded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .exercises import EXERCISES, SOLUTIONS_DIR, STUBS_DIR, TESTS_DIR, exercise_for_path
from .report import format_table, gradescope, write_json


def _folder_files(folder: Path) -> tuple[list[Path], list[str]]:
    """One file per exercise in a submission folder, and why an exercise is not graded.

    The stub's own file name wins (ex6_shuffle.py); otherwise a single exN_*.py file; several others: none of them
    (a folder is one submission, and adding up copies would count an exercise several times).
    """
    by_key: dict[str, list[Path]] = {}
    unknown: list[Path] = []
    for path in sorted(folder.glob("ex[0-9]*_*.py")):
        if _is_exercise_name(path):
            by_key.setdefault(exercise_for_path(path).key, []).append(path)
        else:
            unknown.append(path)
    files, errors = list(unknown), []  # unknown names are reported by grade()
    for key, paths in by_key.items():
        own = [p for p in paths if p.name == EXERCISES[key].stub]
        if own or len(paths) == 1:
            files.append((own or paths)[0])
        else:
            names = ", ".join(p.name for p in paths)
            errors.append(f"{folder}: several files for {key} ({names}): keep one (or name it {EXERCISES[key].stub})")
    return sorted(files), errors


def _expand(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Files as given, and errors; a folder stands for one exN_*.py file per exercise in it (:func:`_folder_files`)."""
    files: list[Path] = []
    errors: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            found, why = _folder_files(path)
            files, errors = files + found, errors + why
        else:
            files.append(path)
    return files, errors


def _is_exercise_name(path: Path) -> bool:
    try:
        exercise_for_path(path)
    except ValueError:
        return False
    return True


def _count_best_per_exercise(results: dict[str, Any]) -> None:
    """Score each exercise once: with several files of one exercise (given explicitly), the best one counts.

    Sets ``counted`` on every exercise entry and on every test (False for the other files of that exercise), and
    the totals from the counted files only: an exercise never counts above its maximum.
    """
    best: dict[str, dict[str, Any]] = {}
    for entry in results["exercises"]:
        if entry["exercise"] not in best or entry["score"] > best[entry["exercise"]]["score"]:
            best[entry["exercise"]] = entry
    counted_files = {entry["file"] for entry in best.values()}
    for entry in results["exercises"]:
        entry["counted"] = entry["file"] in counted_files
        others = [e for e in results["exercises"] if e["exercise"] == entry["exercise"]]
        if len(others) > 1 and not entry["counted"]:
            chosen = Path(best[entry["exercise"]]["file"]).name
            entry["not_counted_reason"] = f"{entry['exercise']} is counted once: {chosen} scored best"
    for test in results["tests"]:
        test["counted"] = test["file"] in counted_files
    results["score"] = sum(t["score"] for t in results["tests"] if t["counted"])
    results["max_score"] = sum(t["max_score"] for t in results["tests"] if t["counted"])


def _batches(files: list[Path]) -> list[list[tuple[Path, str]]]:
    """Split (file, exercise) pairs so that no batch holds two files of the same exercise."""
    batches: list[list[tuple[Path, str]]] = []
    for path in files:
        key = exercise_for_path(path).key
        for batch in batches:
            if all(k != key for _, k in batch):
                batch.append((path, key))
                break
        else:
            batches.append([(path, key)])
    return batches


def _run_batch(batch: list[tuple[Path, str]], timeout: float | None, verbose: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gconv-grade-") as folder:
        results_file, ini = Path(folder) / "results.json", Path(folder) / "pytest.ini"
        ini.write_text("[pytest]\n")  # isolates the run from any pytest configuration around the files
        command = [sys.executable, "-m", "pytest", "-p", "gconv_edu.grading.plugin", "-c", str(ini)]
        command += ["--rootdir", str(TESTS_DIR), "--noconftest", "-p", "no:cacheprovider", "-q"]
        command += ["--grading-results", str(results_file)]
        command += ["--grading-timeout", str(timeout)] if timeout else []
        for path, _ in batch:
            command += ["--student", str(path.resolve())]
        command += [str(EXERCISES[key].test_module) for _, key in batch]
        # Only this plugin, and none of the caller's pytest options (a PYTEST_ADDOPTS="-x" would stop grading early).
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        env["GCONV_EDU_GRADE_BATCH"] = "1"  # this pytest only grades: it may adopt its workers' orphans
        completed = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        if verbose:
            print(completed.stdout + completed.stderr)
        # pytest exits 0 (all passed) or 1 (some failed) after writing the results; anything else (killed by a
        # signal, interrupted) means the file, if any, is not the plugin's own: e.g. student code that wrote a fake
        # one and killed the batch process.
        if completed.returncode not in (0, 1) or not results_file.exists():
            tail = (completed.stdout + completed.stderr).strip().splitlines()[-5:]
            names = ", ".join(path.name for path, _ in batch)
            return {"errors": [f"{names}: the grader failed (exit {completed.returncode}): {' | '.join(tail)}"]}
        return json.loads(results_file.read_text())


def grade(
    paths: list[str | Path], timeout: float | None = None, verbose: bool = False, jobs: int | None = None
) -> dict[str, Any]:
    """Grade student files; returns the results dict described in :mod:`gconv_edu.grading.report`.

    ``timeout``: seconds per call of the student's code (default: each exercise's own, 5 s).
    ``jobs``: batches graded at the same time (default: the number of CPUs, at most 4).
    A folder is one submission: one file per exercise in it (the stub's name, else the only exN_*.py file).
    Several files of one exercise given explicitly are all graded, but the exercise counts once: the best file.
    """
    start = time.monotonic()
    results: dict[str, Any] = {"score": 0.0, "max_score": 0.0, "exercises": [], "tests": [], "errors": []}
    for folder in (Path(p) for p in paths if Path(p).is_dir()):
        # A submission folder without some exercise: say so (Gradescope shows it), rather than grade less silently.
        present = {exercise_for_path(f).key for f in folder.glob("ex[0-9]*_*.py") if _is_exercise_name(f)}
        results["errors"] += [
            f"{folder}: no file for {e.key} (expected {e.stub})" for e in EXERCISES.values() if e.key not in present
        ]
    files, folder_errors = _expand([str(p) for p in paths])
    results["errors"] += folder_errors
    gradable = []
    for path in files:
        try:
            exercise_for_path(path)
        except ValueError as error:
            results["errors"].append(str(error))
            continue
        if not path.is_file():
            results["errors"].append(f"{path}: no such file")
            continue
        gradable.append(path)
    batches = _batches(gradable)
    workers = max(1, min(len(batches), jobs or min(4, os.cpu_count() or 1)))
    # Each batch is its own process: threads only wait for them.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda batch: _run_batch(batch, timeout, verbose), batches))
    for part in parts:
        for field in ("exercises", "tests", "errors"):
            results[field] += part.get(field, [])
    order = {str(p.resolve()): i for i, p in enumerate(gradable)}
    results["exercises"].sort(key=lambda e: order.get(e["file"], 0))
    results["tests"].sort(key=lambda t: (order.get(t["file"], 0), *map(int, t["number"].split("."))))
    _count_best_per_exercise(results)
    results["execution_time"] = round(time.monotonic() - start, 3)
    return results


def self_check(timeout: float | None = None, verbose: bool = False, jobs: int | None = None) -> int:
    """The reference solutions must score full marks and the stubs zero, on every exercise. 0 when they do."""
    solutions = [SOLUTIONS_DIR / e.stub for e in EXERCISES.values()]
    stubs = [STUBS_DIR / e.stub for e in EXERCISES.values()]
    present = [p for p in solutions + stubs if p.is_file()]
    results = grade(present, timeout, verbose, jobs)
    by_file = {e["file"]: e for e in results["exercises"]}
    failures = list(results["errors"])
    for kind, files, wanted in (("solution", solutions, "full"), ("stub", stubs, "zero")):
        for path in files:
            entry = by_file.get(str(path.resolve()))
            if entry is None:
                print(f"  {kind:<9}{path.name:<24} missing ({path.parent}): not checked")
                continue
            good = entry["score"] == 0 if wanted == "zero" else abs(entry["score"] - entry["max_score"]) < 1e-6
            good = good and entry["max_score"] > 0
            status = "ok" if good else f"WRONG (expected {wanted} marks)"
            print(f"  {kind:<9}{path.name:<24}{entry['score']:7.2f} / {entry['max_score']:g}  {status}")
            if not good:
                failures.append(f"{kind} {path.name}")
                lost = [t for t in results["tests"] if t["file"] == entry["file"] and t["status"] != "passed"]
                for test in lost[:5] if wanted == "full" else []:
                    print(f"      {test['number']} {test['name']}: {test['output']}")
    print("self-check " + ("passed" if not failures else f"FAILED: {', '.join(failures)}"))
    return 0 if not failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gconv-edu grade",
        description="Grade exercise files (exN_*.py; a folder means the exercise files in it).",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="student files, e.g. lessons/exercises/ex2_*.py")
    parser.add_argument("--gradescope", metavar="FILE", help="write Gradescope's results.json here")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON (GitHub Classroom, CI)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="per-call limit (default 5 s per exercise)")
    parser.add_argument("--fail-under", type=float, metavar="SCORE", help="exit 1 when the total score is below this")
    parser.add_argument("--self-check", action="store_true", help="solutions score full marks, stubs score zero")
    parser.add_argument("--verbose", action="store_true", help="show pytest's own output too")
    parser.add_argument("--jobs", type=int, metavar="N", help="files graded at once (default: CPUs, at most 4)")
    args = parser.parse_args(argv)
    if args.timeout is not None and args.timeout <= 0:
        parser.error(f"--timeout={args.timeout} must be > 0 seconds")
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs={args.jobs} must be >= 1")
    if args.self_check:
        return self_check(args.timeout, args.verbose, args.jobs)
    if not args.paths:
        parser.error("give at least one exercise file (or --self-check)")
    results = grade(args.paths, args.timeout, args.verbose, args.jobs)
    print(format_table(results))
    if args.gradescope:
        write_json(args.gradescope, gradescope(results))
    if args.json:
        write_json(args.json, results)
    if not results["exercises"]:
        return 2
    if args.fail_under is not None and results["score"] < args.fail_under:
        return 1
    return 0
