"""``gconv-edu grade``: grade exercise files or a roster, print the table, write Gradescope / JSON / CSV, self-check.

Each run of pytest grades at most one file per exercise, so the files are split into batches; every batch runs in
its own ``python -m pytest`` process with only this package's plugin loaded (no conftest, no other plugins), and the
student's code runs in worker processes below that. A batch sends its results over an inherited pipe (no file a
student's process could find), and counts only if its pytest exited 0 or 1. SIGTERM or SIGINT ends every batch (and
with it its workers, which die with their parent). The exit code is 0 whenever grading happened, whatever the score
(``--fail-under`` opts into a non-zero exit for CI); 2 for a usage error or when nothing could be graded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .collect import Submitted, as_script, folder_files
from .exercises import EXERCISES, SOLUTIONS_DIR, TESTS_DIR, exercise_for_path, stubs_dir
from .report import format_table, gradescope, write_json


@dataclass(frozen=True)
class Options:
    """How to grade: per-call ``timeout`` (s, None: each exercise's own), ``memory_limit`` (GiB per worker, 0: none),
    ``user`` (run student code as this user), ``seed`` (hidden cases; None: drawn), ``verbose`` (pytest's output)."""

    timeout: float | None = None
    memory_limit: float = 4.0
    user: str | None = None
    seed: int | None = None
    verbose: bool = False


_RUNNING: set[subprocess.Popen] = set()  # batches in flight: ended by SIGTERM/SIGINT
_RUNNING_LOCK = threading.Lock()


def prerequisites() -> list[str]:
    """What grading needs and this environment lacks (empty when all is there)."""
    missing = [f"{name} is not installed (pip install {name})" for name in ("pytest", "numpy") if not _importable(name)]
    if not TESTS_DIR.is_dir():
        missing.append(f"the exercise tests are missing ({TESTS_DIR}): reinstall gconv-edu")
    return missing


def run_as_problem(user: str) -> str | None:
    """Why student code cannot run as ``user`` (None when it can): not root, no such user, or this Python (or
    NumPy) out of that user's reach, e.g. an interpreter under root's 0700 home. Checked before any grading, so a
    whole course is not silently graded zero."""
    import pwd

    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"--run-as {user}: needs root (this process runs as uid {getattr(os, 'geteuid', lambda: '?')()})"
    try:
        pwd.getpwnam(user)
    except KeyError:
        return f"--run-as {user}: no such user"
    try:
        probe = subprocess.run(
            [sys.executable, "-I", "-c", "import numpy"],
            user=user,
            group=pwd.getpwnam(user).pw_gid,
            extra_groups=[],
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        failure = None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["no message"])[-1]
    except OSError as error:
        failure = str(error)
    except subprocess.TimeoutExpired:
        failure = "'import numpy' took over 120 s"
    if failure is None:
        return None
    return (
        f"--run-as {user}: that user cannot run this Python ({sys.executable}) with NumPy: {failure}. Install the "
        "grader with an interpreter every user can read (e.g. /usr/bin/python3), not one under a private home"
    )


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _batches(files: list[Submitted]) -> list[list[Submitted]]:
    """Split files so that no batch holds two files of the same exercise."""
    batches: list[list[Submitted]] = []
    for file in files:
        for batch in batches:
            if all(other.key != file.key for other in batch):
                batch.append(file)
                break
        else:
            batches.append([file])
    return batches


def _run_batch(batch: list[Submitted], options: Options, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gconv-grade-") as folder:
        ini = Path(folder) / "pytest.ini"
        ini.write_text("[pytest]\n")  # isolates the run from any pytest configuration around the files
        read_end, write_end = os.pipe()
        command = [sys.executable, "-m", "pytest", "-p", "gconv_edu.grading.plugin", "-c", str(ini)]
        command += ["--rootdir", str(TESTS_DIR), "--noconftest", "-p", "no:cacheprovider", "-q"]
        command += ["--grading-results-fd", str(write_end), "--grading-memory-limit", str(options.memory_limit)]
        command += ["--grading-timeout", str(options.timeout)] if options.timeout else []
        command += ["--grading-user", options.user] if options.user else []
        for file in batch:
            command += ["--student", str(file.path.resolve()), "--grading-name", f"{file.key}={file.shown.name}"]
        command += [str(EXERCISES[file.key].test_module) for file in batch]
        # Only this plugin, and none of the caller's pytest options (a PYTEST_ADDOPTS="-x" would stop grading early).
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        env["GCONV_EDU_GRADE_BATCH"] = "1"  # this pytest only grades: it may adopt its workers' orphans
        env["GCONV_EDU_GRADING_SEED"] = str(seed)  # in the environment, not argv: other users cannot read it
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(_read_all(read_end)), daemon=True)
        try:
            process = subprocess.Popen(
                command,
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                pass_fds=[write_end],
                start_new_session=True,  # a Ctrl-C reaches gconv-edu grade, which ends the batch itself
            )
        finally:
            os.close(write_end)
        reader.start()
        with _RUNNING_LOCK:
            _RUNNING.add(process)
        try:
            output, _ = process.communicate()
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(process)
        reader.join(10)
        if options.verbose:
            print(output)
        # pytest exits 0 (all passed) or 1 (some failed) after writing the results; anything else (killed by a
        # signal, interrupted) means the results, if any, are not the plugin's own.
        data = received[0] if received else b""
        if process.returncode not in (0, 1) or not data:
            tail = output.strip().splitlines()[-5:]
            names = ", ".join(file.shown.name for file in batch)
            return {"errors": [f"{names}: the grader failed (exit {process.returncode}): {' | '.join(tail)}"]}
        results = json.loads(data)
    shown = {str(file.path.resolve()): str(file.shown) for file in batch}
    for entry in results["exercises"] + results["tests"]:
        entry["file"] = shown.get(entry["file"], entry["file"])
    return results


def _read_all(descriptor: int) -> bytes:
    with open(descriptor, "rb") as pipe:
        return pipe.read()


def end_batches(signum: int, frame: Any = None) -> None:
    """Signal handler: kill every batch in flight (their workers die with them), then exit 128 + signum."""
    with _RUNNING_LOCK:
        for process in list(_RUNNING):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    print(f"gconv-edu grade: stopped by signal {signum}; nothing graded was kept", file=sys.stderr)
    raise SystemExit(128 + signum)


def _count_best_per_exercise(results: dict[str, Any]) -> None:
    """Score each exercise once: with several files of one exercise (given explicitly), the best one counts.

    Sets ``counted`` on every exercise entry and on every test (False for the other files of that exercise), and
    the totals from the counted files only. Test numbers stay unique: the files of a repeated exercise number
    their tests N.file.test.
    """
    best: dict[str, dict[str, Any]] = {}
    for entry in results["exercises"]:
        if entry["exercise"] not in best or entry["score"] > best[entry["exercise"]]["score"]:
            best[entry["exercise"]] = entry
    counted_files = {entry["file"] for entry in best.values()}
    for entry in results["exercises"]:
        entry["counted"] = entry["file"] in counted_files
        others = [e["file"] for e in results["exercises"] if e["exercise"] == entry["exercise"]]
        if len(others) > 1:
            prefix = f"{EXERCISES[entry['exercise']].number}.{others.index(entry['file']) + 1}."
            for test in results["tests"]:
                if test["file"] == entry["file"]:
                    test["number"] = prefix + test["number"].split(".")[-1]
            if not entry["counted"]:
                chosen = Path(best[entry["exercise"]]["file"]).name
                entry["not_counted_reason"] = f"{entry['exercise']} is counted once: {chosen} scored best"
    for test in results["tests"]:
        test["counted"] = test["file"] in counted_files
    results["score"] = round(sum(t["score"] for t in results["tests"] if t["counted"]), 2)
    results["max_score"] = round(sum(t["max_score"] for t in results["tests"] if t["counted"]), 2)


def grade(
    paths: list[str | Path],
    timeout: float | None = None,
    verbose: bool = False,
    jobs: int | None = None,
    options: Options | None = None,
    exercises: list[str] | None = None,
) -> dict[str, Any]:
    """Grade student files and folders; returns the results dict described in :mod:`gconv_edu.grading.report`.

    ``timeout``: seconds per call of the student's code (default: each exercise's own, 5 s); ``options`` says the
    rest (memory limit, user, seed). ``jobs``: batches graded at the same time (default: CPUs, at most 4).
    A folder is one submission, searched at any depth (:func:`gconv_edu.grading.collect.folder_files`);
    ``exercises`` are the ones expected in it (default: all). Several files of one exercise given explicitly are all
    graded, but the exercise counts once: the best file. ``results["seed"]`` replays the hidden cases.
    """
    options = options or Options(timeout=timeout, verbose=verbose)
    start = time.monotonic()
    seed = options.seed if options.seed is not None else int.from_bytes(os.urandom(4), "little")
    results: dict[str, Any] = {"score": 0.0, "max_score": 0.0, "seed": seed, "exercises": [], "tests": [], "errors": []}
    missing = prerequisites()
    if missing:
        results["errors"] = [f"cannot grade: {why}" for why in missing]
        results["execution_time"] = 0.0
        return results
    with tempfile.TemporaryDirectory(prefix="gconv-submission-") as workspace:
        os.chmod(workspace, 0o755)  # notebooks' scripts live here: the student's user must read them
        gradable: list[Submitted] = []
        for path in map(Path, paths):
            found = [path]
            if path.is_dir():
                found, why = folder_files(path, exercises)
                results["errors"] += why
            for file in found:
                try:
                    exercise_for_path(file)
                    if not file.is_file():
                        raise ValueError(f"{file}: no such file")
                    gradable.append(as_script(file, Path(workspace)))
                except ValueError as error:
                    results["errors"].append(str(error))
        batches = _batches(gradable)
        workers = max(1, min(len(batches), jobs or min(4, os.cpu_count() or 1)))
        # Each batch is its own process: threads only wait for them.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(lambda batch: _run_batch(batch, options, seed), batches))
    for part in parts:
        for field in ("exercises", "tests", "errors"):
            results[field] += part.get(field, [])
    order = {str(file.shown): i for i, file in enumerate(gradable)}
    results["exercises"].sort(key=lambda e: order.get(e["file"], 0))
    results["tests"].sort(key=lambda t: (order.get(t["file"], 0), *map(int, t["number"].split("."))))
    _count_best_per_exercise(results)
    results["execution_time"] = round(time.monotonic() - start, 3)
    return results


def self_check(options: Options | None = None, jobs: int | None = None) -> int:
    """The reference solutions must score full marks and the stubs zero, on every exercise. 0 when they do.

    The solutions are the checkout's ``instructor/solutions/`` (never shipped in the package): 2 without a checkout.
    """
    if not SOLUTIONS_DIR.is_dir():
        print(
            f"self-check needs a checkout of the repository: the reference solutions live in instructor/solutions/ "
            f"there (looked for {SOLUTIONS_DIR}); the installed package does not ship them"
        )
        return 2
    solutions = [SOLUTIONS_DIR / e.stub for e in EXERCISES.values()]
    stubs = [stubs_dir() / e.stub for e in EXERCISES.values()]
    present = [p for p in solutions + stubs if p.is_file()]
    results = grade(present, jobs=jobs, options=options)
    by_file = {e["file"]: e for e in results["exercises"]}
    failures = list(results["errors"])
    for kind, files, wanted in (("solution", solutions, "full"), ("stub", stubs, "zero")):
        for path in files:
            entry = by_file.get(str(path))
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


def _number(option: str, minimum: float, strict: bool) -> Any:
    """An argparse type: a finite float >= minimum (> when strict); NaN, inf and negatives are usage errors."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option}={text!r} is not a number") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise argparse.ArgumentTypeError(f"{option}={text} must be a finite number {bound}")
        return value

    return parse


def writable_file(option: str, path: str) -> str | None:
    """Why ``path`` cannot be written (checked before any work), or None. Creates missing parent folders."""
    target = Path(path).expanduser()
    if target.is_dir():
        return f"{option} {path}: is a folder"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".gconv-write-check-"):
            pass
        if target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as error:
        return f"{option} {path}: cannot write there ({type(error).__name__}: {error.strerror})"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gconv-edu grade",
        description="Grade exercise files (exN_*.py or .ipynb; a folder means the exercise files in it, any depth), "
        "or a roster of student folders.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="student files, e.g. lessons/exercises/ex1_*.py")
    parser.add_argument("--gradescope", metavar="FILE", help="write Gradescope's results.json here")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON (per-test detail, hidden seed)")
    parser.add_argument("--roster", metavar="DIR", help="one submission folder per student (folder name = id)")
    parser.add_argument("--csv", metavar="FILE", help="with --roster: the gradebook, one row per student")
    parser.add_argument(
        "--timeout", type=_number("--timeout", 0, True), metavar="SECONDS", help="per-call limit (default 5 s)"
    )
    parser.add_argument(
        "--memory-limit",
        type=_number("--memory-limit", 0, False),
        default=4.0,
        metavar="GiB",
        help="address space per worker process (default 4 GiB; 0: no limit); past it, that call fails",
    )
    parser.add_argument(
        "--fail-under", type=_number("--fail-under", 0, False), metavar="SCORE", help="exit 1 below this total"
    )
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the hidden cases (default: drawn; in --json)")
    parser.add_argument("--exercises", nargs="+", metavar="exN", help="the exercises a folder must hold (default all)")
    parser.add_argument("--run-as", metavar="USER", help="run student code as this unprivileged user (needs root)")
    parser.add_argument("--self-check", action="store_true", help="solutions score full marks, stubs score zero")
    parser.add_argument("--verbose", action="store_true", help="show pytest's own output too")
    parser.add_argument("--jobs", type=int, metavar="N", help="batches (or students) at once (default: CPUs, max 4)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs={args.jobs} must be >= 1")
    unknown = [key for key in args.exercises or [] if key not in EXERCISES]
    if unknown:
        parser.error(f"--exercises: unknown {', '.join(unknown)} (known: {', '.join(EXERCISES)})")
    if args.csv and not args.roster:
        parser.error("--csv goes with --roster DIR")
    if args.roster and not Path(args.roster).is_dir():
        parser.error(f"--roster {args.roster}: not a folder")
    for option in ("gradescope", "json", "csv"):
        problem = writable_file(f"--{option}", getattr(args, option)) if getattr(args, option) else None
        if problem:
            parser.error(problem)
    if args.run_as:
        problem = run_as_problem(args.run_as)
        if problem:
            parser.error(problem)
    options = Options(args.timeout, args.memory_limit, args.run_as, args.seed, args.verbose)
    for signum in (signal.SIGTERM, signal.SIGINT):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signum, end_batches)
    if args.self_check:
        return self_check(options, args.jobs)
    if args.roster:
        from .roster import grade_roster

        return grade_roster(Path(args.roster), args.csv, args.json, options, args.jobs, args.exercises)
    if not args.paths:
        parser.error("give at least one exercise file (or --roster DIR, or --self-check)")
    results = grade(args.paths, jobs=args.jobs, options=options, exercises=args.exercises)
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
