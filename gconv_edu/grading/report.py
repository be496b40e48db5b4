"""The grader's outputs: the per-test table, Gradescope's ``results.json``, and the same data as JSON for other tools.

``results`` (as the plugin and :func:`gconv_edu.grading.cli.grade` produce it)::

    {"score": float, "max_score": float, "execution_time": seconds,
     "exercises": [{"exercise", "title", "file", "score", "max_score", "verdict", "counted", "not_counted_reason"}],
     "tests": [{"exercise", "file", "number", "name", "nodeid", "score", "max_score", "status", "output",
                "visibility", "counted"}],
     "errors": [str]}     # files that could not be graded at all (unknown name, missing file, grader crash)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GRADESCOPE_TEST_FIELDS = ("name", "number", "score", "max_score", "status", "output", "output_format", "visibility")


def _points(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def format_table(results: dict[str, Any]) -> str:
    """One block per graded file: number, test, points got/possible, one-line reason; then ``Score: X / Y``."""
    lines = []
    for exercise in results.get("exercises", []):
        lines.append(f"\n{Path(exercise['file']).name}  ({exercise['exercise']}: {exercise['title']})")
        if exercise.get("verdict"):
            lines.append(f"  ZERO for this exercise: {exercise['verdict']}")
        if exercise.get("counted") is False:
            lines.append(f"  NOT COUNTED in the total: {exercise.get('not_counted_reason', 'another file counts')}")
        lines.append(f"  {'#':<6}{'test':<46}{'points':>12}  result")
        previous = None
        for test in results["tests"]:
            if test["file"] != exercise["file"]:
                continue
            reason = "ok" if test["status"] == "passed" else test["output"] or "failed"
            if reason == previous and reason != "ok":
                reason = "(same as above)"
            else:
                previous = reason
            points = f"{_points(test['score'])}/{_points(test['max_score'])}"
            name = test["name"].split(": ", 1)[-1]
            name = name if len(name) <= 44 else name[:41] + "..."
            lines.append(f"  {test['number']:<6}{name:<46}{points:>12}  {reason}")
        lines.append(f"  {'subtotal':<52}{_points(exercise['score']):>6}/{_points(exercise['max_score'])}")
    lines += [""] if results.get("errors") else []
    for error in results.get("errors", []):
        lines.append(f"NOT GRADED: {error}")
    lines.append(f"\nScore: {_points(results['score'])} / {_points(results['max_score'])}")
    return "\n".join(lines)


def gradescope(results: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's results.json: score, execution_time, output, tests[] with the fields Gradescope reads."""
    keys = [e["exercise"] for e in results["exercises"]]
    repeated = {key for key in keys if keys.count(key) > 1}  # several files of one exercise: name tests by file

    def name(test: dict[str, Any]) -> str:
        return f"{Path(test['file']).name}: {test['name']}" if test["exercise"] in repeated else test["name"]

    def counts(test: dict[str, Any]) -> bool:
        return test.get("counted", True) is not False

    # A file that does not count (another file of its exercise scored better) keeps its feedback but no points, so
    # that Gradescope's per-test points add up to the total.
    tests = [
        {
            "name": name(test) + ("" if counts(test) else " (not counted)"),
            "number": test["number"],
            "score": round(float(test["score"]), 4) if counts(test) else 0.0,
            "max_score": round(float(test["max_score"]), 4) if counts(test) else 0.0,
            "status": test["status"],
            "output": (test["output"] or ("ok" if test["status"] == "passed" else "failed"))
            + ("" if counts(test) else f" ({_points(test['score'])}/{_points(test['max_score'])}, not counted)"),
            "output_format": "text",
            "visibility": test.get("visibility", "visible"),
        }
        for test in results["tests"]
    ]
    # The summary is shown before hidden tests are published: it adds up the visible tests only, or it would leak how
    # the hidden ones went.
    summary = []
    for exercise in results["exercises"]:
        mine = [t for t in results["tests"] if t["file"] == exercise["file"]]
        visible = [t for t in mine if t.get("visibility", "visible") == "visible"]
        note = " (visible tests)" if len(visible) < len(mine) else ""
        note += "" if exercise.get("counted") is not False else " (not counted)"
        got, out_of = sum(t["score"] for t in visible), sum(t["max_score"] for t in visible)
        summary.append(f"{Path(exercise['file']).name}: {_points(got)} / {_points(out_of)}{note}")
    summary += [f"{Path(e['file']).name}: {e['verdict']}" for e in results["exercises"] if e.get("verdict")]
    summary += [f"NOT GRADED: {error}" for error in results.get("errors", [])]
    return {
        "score": round(float(results["score"]), 4),
        "execution_time": float(results["execution_time"]),
        "output": "\n".join(summary),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
