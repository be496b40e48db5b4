"""The autograder of issue 12: abuses that must not score, correct work that must, hints for the listed mistakes,
exact points, forgiving names, notebooks, memory limit, CLI validation and signals (issue 15)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gconv_edu.grading.cli import Options, grade, main
from gconv_edu.grading.exercises import EXERCISES, PACKAGE_DIR, SOLUTIONS_DIR, canonical_name, exercise_for_path
from gconv_edu.grading.plugin import split_points

ROOT = Path(__file__).resolve().parents[1]
WRONG = ROOT / "tests" / "wrong_solutions"
SEED = 20261202

# A file that must lose points, and a phrase that one of its failures must carry.
MISTAKES = {
    "ex1_stride_wrong_axis.py": "stride (2) was used for both axes: W_out uses stride_w",
    "ex1_size_without_minus_one.py": "check the output size first: here H_out",
    "ex1_missing_plus_one.py": "(note the + 1)",
    "ex1_float32_arithmetic.py": "is float32 rounding on float64 inputs",
    "ex4_db_one_sample.py": "db is from the first sample only",
    "ex4_dx_flipped_kernel.py": "dx is computed with the kernel flipped",
}
# Abuses that scored full marks before: each must now lose points, with this phrase in a failure.
ABUSES = {
    "ex1_lookup_table.py": "hidden case 1",
    "ex2_hardcoded_answers.py": "hidden case 1",
    "ex1_patches_array_equal.py": "modified its input weight in place",
    "ex5_returns_input_for_g1.py": "returned its input x itself (or a view of it)",
    "ex6_decoy_njit.py": "ran inside @numba.njit functions",
    "ex6_racy_prange.py": "wrong",
}
# Correct work that lost points before: each must now score full marks.
CORRECT = ["ex5_prints_4mb_stderr.py", "ex5_selftest_helper_imports.py", "ex2_float_answers.py"]


@pytest.fixture(scope="module")
def graded():
    results = grade([WRONG / n for n in (*MISTAKES, *ABUSES, *CORRECT)], options=Options(timeout=2.0, seed=SEED))
    assert not results["errors"], results["errors"]
    return results


def _entry(results, name):
    return next(e for e in results["exercises"] if Path(e["file"]).name == name)


def _failures(results, name):
    return [t["output"] for t in results["tests"] if Path(t["file"]).name == name and t["status"] == "failed"]


@pytest.mark.parametrize("name", [*MISTAKES, *ABUSES])
def test_mistakes_and_abuses_lose_points_with_their_message(graded, name):
    entry = _entry(graded, name)
    assert entry["score"] < entry["max_score"], name
    phrase = {**MISTAKES, **ABUSES}[name]
    assert any(phrase in output for output in _failures(graded, name)), _failures(graded, name)[:3]


@pytest.mark.parametrize("name", CORRECT)
def test_correct_work_scores_full_marks(graded, name):
    entry = _entry(graded, name)
    assert entry["verdict"] is None and entry["score"] == entry["max_score"] > 0, _failures(graded, name)[:3]


def test_hidden_case_feedback_names_the_kind_not_the_case(graded):
    hidden = [o for o in _failures(graded, "ex1_lookup_table.py") if o.startswith("hidden case")]
    assert hidden and all("seed" not in o and "hint" not in o for o in hidden), hidden
    assert graded["seed"] == SEED


def test_per_test_points_add_up_exactly_and_numbers_are_unique(graded):
    assert split_points(5, 6) == [0.85, 0.83, 0.83, 0.83, 0.83, 0.83]
    for entry in graded["exercises"]:
        tests = [t for t in graded["tests"] if t["file"] == entry["file"]]
        cents = sum(round(t["max_score"] * 100) for t in tests)
        assert cents == EXERCISES[entry["exercise"]].number * 0 + round(entry["max_score"] * 100)
        assert all(abs(t["max_score"] * 100 - round(t["max_score"] * 100)) < 1e-9 for t in tests)
    totals = {"ex1": 20, "ex2": 10, "ex4": 25, "ex5": 10, "ex6": 15}
    for entry in graded["exercises"]:
        assert entry["max_score"] == totals[entry["exercise"]]
    numbers = [t["number"] for t in graded["tests"]]
    assert len(numbers) == len(set(numbers))


def test_memory_error_costs_only_those_calls():
    results = grade([WRONG / "ex5_allocates_20gb.py"], options=Options(timeout=5.0, seed=SEED, memory_limit=4.0))
    visible = [t for t in results["tests"] if "channel_shuffle [" in t["name"]]
    failed = [t for t in visible if t["status"] == "failed"]
    assert [t["name"].split("[")[1] for t in failed] == ["groups4-float32]", "one-pixel-groups3]"]
    assert all("MemoryError" in t["output"] and "memory limit of 4 GiB" in t["output"] for t in failed)
    backward = [t for t in results["tests"] if "backward [" in t["name"]]
    assert backward and all(t["status"] == "passed" for t in backward)


def test_forgiving_names_any_depth_and_where_it_looked(tmp_path):
    for name in ("ex1_naive_forward (1).py", "Ex1_naive_forward.py", "ex1-naive-forward.py", "EX1-Naive Forward.py"):
        assert exercise_for_path(name).key == "ex1" and canonical_name(name) == "ex1_naive_forward.py"
    nested = tmp_path / "submission" / "my-zip" / "code"
    nested.mkdir(parents=True)
    (nested / "ex5-shuffle (2).py").write_text((SOLUTIONS_DIR / "ex5_shuffle.py").read_text())
    (nested / "notes.txt").write_text("hi")
    results = grade([tmp_path / "submission"], options=Options(seed=SEED), exercises=["ex5", "ex3"])
    assert results["score"] == results["max_score"] == 10
    assert len(results["errors"]) == 1 and "no file for ex3 (expected ex3_im2col.py" in results["errors"][0]
    assert (
        "looked in" in results["errors"][0]
        and "found my-zip/code/ex5-shuffle (2).py, my-zip/code/notes.txt" in (results["errors"][0])
    )


def test_notebook_submission_grades_its_code_cells(tmp_path):
    source = (SOLUTIONS_DIR / "ex5_shuffle.py").read_text()
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# my shuffle\n"]},
        {"cell_type": "code", "metadata": {}, "source": ["%matplotlib inline\n", "!pip list\n"], "outputs": []},
        {"cell_type": "code", "metadata": {}, "source": source.splitlines(keepends=True), "outputs": []},
    ]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "ex5_shuffle.ipynb").write_text(json.dumps(notebook))
    results = grade([tmp_path], options=Options(seed=SEED), exercises=["ex5"])
    assert results["score"] == results["max_score"] == 10, results["errors"]
    assert Path(results["exercises"][0]["file"]).name == "ex5_shuffle.ipynb"


def test_solutions_are_not_in_the_package():
    assert not (PACKAGE_DIR / "solutions").exists()
    assert SOLUTIONS_DIR == ROOT / "instructor" / "solutions" and SOLUTIONS_DIR.is_dir()


def test_missing_prerequisite_is_said_before_grading(monkeypatch):
    import gconv_edu.grading.cli as cli

    monkeypatch.setattr(cli, "_importable", lambda name: name != "pytest")
    results = grade([SOLUTIONS_DIR / "ex5_shuffle.py"])
    assert results["errors"] == ["cannot grade: pytest is not installed (pip install pytest)"]
    assert not results["exercises"]


@pytest.mark.parametrize(
    "option, value",
    [
        ("--timeout", "nan"),
        ("--timeout", "inf"),
        ("--timeout", "-1"),
        ("--timeout", "0"),
        ("--fail-under", "nan"),
        ("--fail-under", "-3"),
        ("--memory-limit", "inf"),
        ("--memory-limit", "-1"),
        ("--memory-limit", "nan"),
    ],
)
def test_float_options_refuse_nan_inf_negatives(option, value, capsys):
    with pytest.raises(SystemExit) as raised:
        main([str(SOLUTIONS_DIR / "ex5_shuffle.py"), option, value])
    assert raised.value.code == 2 and option in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--json", "--gradescope", "--csv"])
def test_unwritable_output_is_a_usage_error_before_work(option, tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    extra = ["--roster", str(tmp_path)] if option == "--csv" else [str(SOLUTIONS_DIR / "ex5_shuffle.py")]
    start = time.monotonic()
    with pytest.raises(SystemExit) as raised:
        main([*extra, option, str(blocked / "out.json")])  # a folder under a file: cannot exist
    err = capsys.readouterr().err
    assert raised.value.code == 2 and f"{option} {blocked / 'out.json'}: cannot write there" in err
    assert "Traceback" not in err and time.monotonic() - start < 5


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_batches_and_workers(tmp_path, signum):
    hang = tmp_path / "ex5_hangs.py"
    hang.write_text(
        "def channel_shuffle(x, groups):\n    while True:\n        pass\n\nchannel_shuffle_backward = channel_shuffle\n"
    )
    mark = f"gconv-signal-test-{signum}"
    env = dict(os.environ, GCONV_SIGNAL_TEST=mark)
    process = subprocess.Popen(
        [sys.executable, "-m", "gconv_edu", "grade", str(hang), "--timeout", "60"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_carrying(mark)) < 3:  # grade, its pytest batch, the worker
        time.sleep(0.2)
    assert len(_carrying(mark)) >= 3, "the worker never started"
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signum and "stopped by signal" in err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _carrying(mark):
        time.sleep(0.2)
    assert not _carrying(mark)


def _carrying(mark: str) -> list[int]:
    """Live processes whose environment carries GCONV_SIGNAL_TEST=mark."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"GCONV_SIGNAL_TEST={mark}".encode() in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                found += [int(entry.name)] if state != "Z" else []
        except OSError:
            continue
    return found


def test_points_helper_rounds_to_hundredths():
    for points, count in ((10, 3), (20, 14), (8, 7), (4, 6)):
        shares = split_points(points, count)
        assert (
            len(shares) == count
            and math.isclose(sum(shares), points)
            and round(sum(s * 100 for s in shares)) == points * 100
        )
