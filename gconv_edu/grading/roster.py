"""``gconv-edu grade --roster DIR --csv grades.csv``: one submission folder per student into one gradebook.

The folder's name is the student's id. Each student is graded as a folder (:func:`gconv_edu.grading.cli.grade`),
``jobs`` students at a time, one progress bar over students. The CSV has one row per student: ``id``, one column
per exercise (its score), ``total`` and ``status``: ``graded``, ``missing ex3, ex5`` (those score 0), or
``not graded: reason``. ``--json`` beside it keeps every student's per-test detail and the hidden cases' seed.
"""

from __future__ import annotations

import csv
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .exercises import EXERCISES


def status(results: dict[str, Any], expected: list[str]) -> str:
    """``graded``, ``missing ex2, ex4`` or ``not graded: reason`` for one student's results."""
    graded = {e["exercise"] for e in results["exercises"]}
    if not graded:
        reason = results["errors"][0] if results["errors"] else "no exercise files"
        return f"not graded: {reason.split(': ', 1)[-1][:200]}"
    failed = [e for e in results["errors"] if "the grader failed" in e or "several files" in e]
    missing = [key for key in expected if key not in graded]
    parts = [f"missing {', '.join(missing)}"] if missing else []
    parts += [f"not graded: {e[:200]}" for e in failed]
    return "; ".join(parts) or "graded"


def row(student: str, results: dict[str, Any], expected: list[str]) -> dict[str, Any]:
    """One CSV row: id, each exercise's counted score (0 when missing), total, status."""
    scores = {key: 0.0 for key in expected}
    for entry in results["exercises"]:
        if entry.get("counted", True) and entry["exercise"] in scores:
            scores[entry["exercise"]] = entry["score"]
    return {
        "id": student,
        **{k: f"{v:g}" for k, v in scores.items()},
        "total": f"{results['score']:g}",
        "status": status(results, expected),
    }


def grade_roster(
    roster: Path,
    csv_path: str | None,
    json_path: str | None,
    options: Any,
    jobs: int | None = None,
    exercises: list[str] | None = None,
) -> int:
    """Grade every student folder of ``roster``; write the CSV (and JSON); print a summary. 0 when done, 2 when the
    roster has no student folder."""
    import os

    from tqdm import tqdm

    from .cli import grade
    from .report import write_json

    students = sorted(p for p in roster.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        print(f"gconv-edu grade: --roster {roster} holds no student folders")
        return 2
    expected = exercises or list(EXERCISES)
    workers = jobs or min(4, os.cpu_count() or 1)
    every: dict[str, Any] = {}
    # A bar on a terminal; in a log (CI, a redirected file) a line every 10 % instead of a carriage-return stream.
    interactive = sys.stderr.isatty()
    done = 0
    lock = threading.Lock()
    started = time.perf_counter()
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(students), unit="student", disable=not interactive) as bar,
    ):

        def one(folder: Path) -> tuple[str, dict[str, Any]]:
            nonlocal done
            results = grade([folder], jobs=1, options=options, exercises=exercises)
            bar.update()
            with lock:
                done += 1
                if not interactive and (done == len(students) or done % max(1, len(students) // 10) == 0):
                    elapsed = time.perf_counter() - started
                    print(f"graded {done}/{len(students)} students in {elapsed:.0f} s", file=sys.stderr, flush=True)
            return folder.name, results

        every = dict(pool.map(one, students))
    rows = [row(student, results, expected) for student, results in every.items()]
    fields = ["id", *expected, "total", "status"]
    if csv_path:
        with open(csv_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    if json_path:
        write_json(json_path, {"students": every})
    graded = sum(r["status"] == "graded" for r in rows)
    print(f"{len(rows)} students: {graded} graded, {len(rows) - graded} with a note (see the status column)")
    if not csv_path and not json_path:
        print(json.dumps(rows[:5], indent=1))
    return 0
