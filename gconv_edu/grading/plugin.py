"""The pytest plugin behind the autograder (registered through the ``pytest11`` entry point).

Without ``--student`` it only registers the ``points`` marker: the project's own test runs see nothing else.
With ``--student FILE`` (repeatable, one file per exercise)::

    pytest --student lessons/exercises/ex2_naive_forward.py

it collects that exercise's tests (unless test paths are given), gives them a ``student`` fixture that runs the
file in a worker process (:class:`gconv_edu.grading.sandbox.StudentFile`), turns each failure into one line of
feedback (never test source), scores with the ``points`` markers (a parametrized test's points are split across its
cases in hundredths, the remainder to its first case, so they add up exactly), prints a score table at the end, and
with ``--grading-results FILE`` writes the results as JSON (``--grading-results-fd N``: into an inherited pipe, which
``gconv-edu grade`` uses so that no file exists for a student's process to find). The hidden cases' seed is
``--grading-seed``, else ``$GCONV_EDU_GRADING_SEED``, else drawn at random; it is in the results.

This module imports nothing heavy at import time: it is loaded by every pytest run in the environment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

POINTS_HELP = (
    "points(n, visibility='visible'): the test is worth n points, split equally across its parametrized cases; "
    "visibility is Gradescope's (visible, hidden, after_due_date, after_published)"
)


class GradingState:
    """Per-session grading data: the student file of each exercise, their workers, and each test's record."""

    def __init__(self, config: pytest.Config, paths: list[str]) -> None:
        from .exercises import exercise_for_path

        self.config = config
        self.timeout: float | None = config.getoption("grading_timeout")
        self.memory_limit: int = int(config.getoption("grading_memory_limit") * (1 << 30))
        self.user: str | None = config.getoption("grading_user")
        self.seed: int = _seed(config)
        self.names: dict[str, str] = {}  # exercise -> the file's name as submitted (a notebook's, say)
        for entry in config.getoption("grading_name") or []:
            key, _, name = entry.partition("=")
            self.names[key] = name
        self.paths: dict[str, Path] = {}
        for path in paths:
            try:
                exercise = exercise_for_path(path)
            except ValueError as error:
                raise pytest.UsageError(f"--student {path}: {error}") from None
            if exercise.key in self.paths:
                raise pytest.UsageError(
                    f"--student {path}: {exercise.key} already has {self.paths[exercise.key]}; grade one file per "
                    "exercise in one run (gconv-edu grade does that for you)"
                )
            self.paths[exercise.key] = Path(path).resolve()
        self.students: dict[str, Any] = {}
        self.records: dict[str, dict[str, Any]] = {}  # nodeid -> record
        self.started = time.monotonic()

    def student(self, key: str) -> Any:
        from .exercises import EXERCISES
        from .sandbox import StudentFile

        if key not in self.students:
            exercise = EXERCISES[key]
            self.students[key] = StudentFile(
                self.paths[key],
                self.timeout or exercise.timeout,
                exercise.first_call_allowance,
                self.memory_limit,
                self.user,
                self.names.get(key),
            )
        return self.students[key]

    def finish(self) -> dict[str, Any]:
        """Apply whole-exercise verdicts (import failure, forbidden import), close workers, return the results."""
        from .exercises import EXERCISES

        exercises = []
        for key, path in self.paths.items():
            student = self.students.get(key)
            verdict = student.verdict if student is not None else None
            records = [r for r in self.records.values() if r["exercise"] == key]
            if verdict:
                for record in records:
                    record.update(score=0.0, status="failed", output=verdict)
            exercises.append(
                {
                    "exercise": key,
                    "title": EXERCISES[key].title,
                    "file": str(path),
                    "score": _cents(sum(r["score"] for r in records)),
                    "max_score": _cents(sum(r["max_score"] for r in records)),
                    "verdict": verdict,
                    "stderr": student.stderr.text() if student is not None else "",
                }
            )
            if student is not None:
                student.close()
        tests = sorted(self.records.values(), key=lambda r: tuple(int(p) for p in r["number"].split(".")))
        return {
            "score": _cents(sum(r["score"] for r in tests)),
            "max_score": _cents(sum(r["max_score"] for r in tests)),
            "seed": self.seed,
            "execution_time": round(time.monotonic() - self.started, 3),
            "exercises": exercises,
            "tests": tests,
        }


def _cents(value: float) -> float:
    """Points are whole hundredths: sums of them are rounded back to hundredths (float addition drifts by 1e-15)."""
    return round(value, 2)


def _seed(config: pytest.Config) -> int:
    given = config.getoption("grading_seed")
    if given is None and os.environ.get("GCONV_EDU_GRADING_SEED", "").isdigit():
        given = int(os.environ["GCONV_EDU_GRADING_SEED"])
    if given is None:
        import secrets

        given = secrets.randbelow(2**32)
    return int(given)


def split_points(points: float, count: int) -> list[float]:
    """``points`` split into ``count`` shares of whole hundredths that add up exactly; the remainder goes to the
    first share. ``split_points(5, 6)`` is [0.85, 0.83, 0.83, 0.83, 0.83, 0.83]."""
    cents = round(points * 100)
    share, remainder = divmod(cents, count)
    return [(share + (remainder if i == 0 else 0)) / 100 for i in range(count)]


_STATE = pytest.StashKey[GradingState]()
_POINTS = pytest.StashKey[float]()
_RESULTS = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gconv-edu grading")
    group.addoption(
        "--student",
        action="append",
        default=[],
        metavar="FILE",
        help="grade this exercise file (exN_*.py); repeat for several exercises",
    )
    group.addoption(
        "--grading-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time limit per call of the student's code (default 5 s; ex5 gets 60 s more per newly compiled signature)",
    )
    group.addoption("--grading-results", metavar="FILE", help="write the graded tests as JSON")
    group.addoption(
        "--grading-results-fd", type=int, metavar="FD", help="write the JSON into this inherited descriptor"
    )
    group.addoption("--grading-seed", type=int, metavar="N", help="seed of the hidden cases (default: drawn at random)")
    group.addoption(
        "--grading-memory-limit", type=float, default=4.0, metavar="GiB", help="address space per worker (0: none)"
    )
    group.addoption("--grading-user", metavar="USER", help="run the student's code as this user (needs root)")
    group.addoption("--grading-name", action="append", metavar="exN=NAME", help="the file's name in feedback")
    group.addoption(
        "--grading-debug", action="store_true", help="keep full tracebacks (for instructors debugging the tests)"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", POINTS_HELP)
    paths = config.getoption("student", default=None)
    if not paths:
        return
    state = GradingState(config, paths)
    config.stash[_STATE] = state
    if os.environ.get("GCONV_EDU_GRADE_BATCH") == "1":  # set by gconv-edu grade, whose batch processes only grade
        from .sandbox import adopt_orphans

        adopt_orphans()
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # No test paths given: run the tests of the exercises being graded, not the project's own suite.
        from .exercises import EXERCISES

        config.args = [str(EXERCISES[key].test_module) for key in state.paths]


@pytest.fixture
def hidden_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this run's hidden cases (recorded in the instructor's results, never in a student's feedback)."""
    state = request.config.stash.get(_STATE, None)
    if state is None:
        pytest.skip("an autograder test: run it with --student FILE")
    return state.seed


@pytest.fixture
def student(request: pytest.FixtureRequest) -> Any:
    """The student's file for this test module's exercise (module attribute ``EXERCISE``), run in a worker."""
    state = request.config.stash.get(_STATE, None)
    key = getattr(request.module, "EXERCISE", None)
    if state is None:
        pytest.skip("an autograder test: run it with --student FILE (e.g. --student lessons/exercises/ex2_*.py)")
    if key not in state.paths:
        pytest.skip(f"no --student file for {key}")
    return state.student(key)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash.get(_STATE, None) is None:
        return
    # A parametrized test's points are split across its cases, in hundredths that add up exactly.
    siblings: dict[tuple[str, str], list[pytest.Item]] = {}
    for item in items:
        siblings.setdefault((item.module.__name__, getattr(item, "originalname", item.name)), []).append(item)
    for group in siblings.values():
        marker = group[0].get_closest_marker("points")
        points = float(marker.args[0]) if marker and marker.args else 1.0
        for item, share in zip(group, split_points(points, len(group))):
            item.stash[_POINTS] = share


def _record(item: pytest.Item, state: GradingState) -> dict[str, Any]:
    from .exercises import EXERCISES

    if item.nodeid not in state.records:
        key = getattr(item.module, "EXERCISE", "ex0")
        index = 1 + sum(r["exercise"] == key for r in state.records.values())
        marker = item.get_closest_marker("points")
        doc = (item.function.__doc__ or item.function.__name__).strip().splitlines()[0].rstrip(".")
        case = f" [{item.callspec.id}]" if hasattr(item, "callspec") else ""
        state.records[item.nodeid] = {
            "exercise": key,
            "file": str(state.paths.get(key, "")),
            "number": f"{EXERCISES[key].number if key in EXERCISES else 0}.{index}",
            "name": f"{key}: {doc}{case}",
            "nodeid": item.nodeid,
            "score": 0.0,
            "max_score": item.stash.get(_POINTS, 1.0),
            "status": "failed",
            "output": "",
            "visibility": (marker.kwargs.get("visibility", "visible") if marker else "visible"),
        }
    return state.records[item.nodeid]


def _feedback(call: pytest.CallInfo) -> str:
    from .errors import GradingFailure

    error = call.excinfo.value if call.excinfo else None
    if error is None:
        return ""
    if isinstance(error, GradingFailure):
        return str(error)
    # An error in the grader's own test code: say so, without the test's source.
    return f"internal grader error ({type(error).__name__}: {str(error)[:200]}); please tell your instructor"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    state = item.config.stash.get(_STATE, None)
    if state is None or report.skipped:
        return report
    record = _record(item, state)
    if report.failed:
        record.update(score=0.0, status="failed", output=_feedback(call))
        if not item.config.getoption("grading_debug"):
            report.longrepr = record["output"]
    elif report.when == "call":
        record.update(score=record["max_score"], status="passed", output="")
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    results = state.finish()
    session.config.stash[_RESULTS] = results
    import json

    target = session.config.getoption("grading_results")
    if target:
        Path(target).write_text(json.dumps(results, indent=2))
    descriptor = session.config.getoption("grading_results_fd")
    if descriptor is not None:
        with os.fdopen(descriptor, "w") as pipe:
            pipe.write(json.dumps(results))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, None)
    if results is None:
        return
    from .report import format_table

    terminalreporter.write_sep("=", "gconv-edu grade")
    terminalreporter.write_line(format_table(results))
