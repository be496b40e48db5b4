"""The autograder: self-check, classic wrong solutions, hangs, syntax errors, forbidden imports, reports, plugin."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from gconv_edu.grading.checks import check_array, check_equal, close
from gconv_edu.grading.cli import Options, grade, main, self_check
from gconv_edu.grading.errors import GradingFailure
from gconv_edu.grading.exercises import EXERCISES, SOLUTIONS_DIR, exercise_for_path, stubs_dir
from gconv_edu.grading.report import GRADESCOPE_TEST_FIELDS, gradescope
from gconv_edu.grading.sandbox import UngradableResult, forbidden_imports, safe_loads

ROOT = Path(__file__).resolve().parents[1]
WRONG = ROOT / "tests" / "wrong_solutions"
STUBS_DIR = stubs_dir()
SEED = 20261202  # the hidden cases of these tests: fixed, so that scores are reproducible

# Each classic bug must lose points, and at least one of its failures must carry the matching hint.
CLASSIC_BUGS = {
    "ex1_wrong_group_slicing.py": "interleaved channels",
    "ex1_padding_one_side.py": "padding on one side only",
    "ex1_dilation_ignored.py": "right without dilation",
    "ex1_transposed_kernel.py": "check the output size first",
    "ex4_stride_ignored_in_dx.py": "stride ignored in the backward pass",
    "ex4_col2im_overwrites.py": "not overwrite",
    "ex4_dw_averaged.py": "dw is averaged over the batch",
    "ex4_db_mean.py": "db is a mean",
    "ex5_wrong_shuffle_order.py": "that is the inverse shuffle",
    "ex3_im2col_row_order.py": "rows are ordered (kernel row, kernel column, channel)",
}
OTHER_BAD_FILES = [
    "ex1_hangs_on_stride.py",
    "ex1_syntax_error.py",
    "ex1_modifies_input.py",
    "ex1_imports_gconv_edu.py",
    "ex5_imports_gconv_edu_at_runtime.py",
    "ex6_no_numba.py",
]
# A result or a file that tries to cheat the grader itself: each must score zero, with the message given here.
CHEATS = {
    "ex1_pickle_payload.py": "returned an object that cannot be graded (student_exercise._Sneaky)",
    "ex1_masked_result.py": "returned an object that cannot be graded (numpy.ma.MaskedArray)",
    "ex5_masked_result.py": "returned an object that cannot be graded (numpy.ma.MaskedArray)",
    "ex2_mock_any.py": "returned an object that cannot be graded (unittest.mock._ANY)",
    "ex5_hangs_at_import.py": "ex5_hangs_at_import.py does not import: timed out after",
}


@pytest.fixture(scope="module")
def wrong_results():
    """All wrong solutions graded once (1 s per call, so the hanging one costs seconds, not minutes)."""
    names = [*CLASSIC_BUGS, *OTHER_BAD_FILES, *CHEATS, "ex5_selftest_main_block.py"]
    results = grade([WRONG / name for name in names], options=Options(timeout=1.0, seed=SEED))
    assert not results["errors"], results["errors"]
    return results


def _tests_of(results, name):
    return [t for t in results["tests"] if Path(t["file"]).name == name]


def _exercise(results, name):
    return next(e for e in results["exercises"] if Path(e["file"]).name == name)


def test_self_check_solutions_full_stubs_zero(capsys):
    assert sorted(p.name for p in STUBS_DIR.glob("ex*.py")) == sorted(e.stub for e in EXERCISES.values())
    assert self_check() == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert out.count(" ok") == 2 * len(EXERCISES) and "self-check passed" in out


@pytest.mark.parametrize("name", list(CLASSIC_BUGS))
def test_classic_bug_loses_points_with_its_hint(wrong_results, name):
    exercise = _exercise(wrong_results, name)
    assert 0 < exercise["max_score"] and exercise["score"] < exercise["max_score"]
    failed = [t["output"] for t in _tests_of(wrong_results, name) if t["status"] == "failed"]
    assert any(CLASSIC_BUGS[name] in output for output in failed), failed
    for output in failed:  # one line each, never a reference value dump or a traceback
        assert "\n" not in output and "Traceback" not in output and "def test_" not in output


def test_hanging_solution_times_out_only_where_it_hangs(wrong_results):
    tests = [t for t in _tests_of(wrong_results, "ex1_hangs_on_stride.py") if "hidden" not in t["name"]]
    timed_out = [t for t in tests if "timed out after 1 s" in t["output"]]
    hangs = {"stride2-uneven", "stride3-kernel2x3", "everything-float32"}  # the cases with stride_h > 1
    assert {t["name"].split("[")[1].rstrip("]") for t in timed_out} == hangs
    assert all(t["status"] == "passed" for t in tests if t not in timed_out)


def test_syntax_error_scores_zero_with_line(wrong_results):
    exercise = _exercise(wrong_results, "ex1_syntax_error.py")
    assert exercise["score"] == 0 and "SyntaxError" in exercise["verdict"] and "line 16" in exercise["verdict"]


def test_modifying_an_input_fails_naming_it(wrong_results):
    tests = [t for t in _tests_of(wrong_results, "ex1_modifies_input.py") if "hidden" not in t["name"]]
    failed = [t for t in tests if t["status"] == "failed"]
    assert failed and all("modified its input weight in place" in t["output"] for t in failed)
    # A 1x1 kernel flipped in place is unchanged: that case passes, so the check is about values, not intent.
    assert [t["name"] for t in tests if t["status"] == "passed"] == ["ex1: forward pass [kernel1x1-groups2]"]


@pytest.mark.parametrize("name, line", [("ex1_imports_gconv_edu.py", 7), ("ex5_imports_gconv_edu_at_runtime.py", 7)])
def test_using_gconv_edu_gives_no_credit(wrong_results, name, line):
    exercise = _exercise(wrong_results, name)
    assert exercise["score"] == 0 and f"import of gconv_edu at line {line}" in exercise["verdict"]
    assert all(t["score"] == 0 and "no credit" in t["output"] for t in _tests_of(wrong_results, name))


def test_numba_exercise_without_numba_loses_only_that_test(wrong_results):
    tests = [t for t in _tests_of(wrong_results, "ex6_no_numba.py") if "hidden" not in t["name"]]
    failed = [t for t in tests if t["status"] == "failed"]
    assert [t["name"] for t in failed] == ["ex6: the loops run in Numba-compiled code"]
    assert "decorate your loop function with @numba.njit" in failed[0]["output"]


def test_prints_wrong_dtype_and_a_dying_process(tmp_path):
    """The student's prints do not disturb grading; a wrong dtype is named; a process that dies fails its tests."""
    odd = tmp_path / "ex5_odd.py"
    odd.write_text(
        "import os\nimport numpy as np\nprint('debug output at import')\n\n"
        "def channel_shuffle(x, groups):\n"
        "    print('debug output in a call')\n"
        "    n, c, h, w = x.shape\n"
        "    y = x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)\n"
        "    return y.astype(np.float64)\n\n"
        "def channel_shuffle_backward(dy, groups):\n"
        "    os._exit(3)\n"
    )
    tests = grade([odd])["tests"]
    shuffle = [t for t in tests if "channel_shuffle [" in t["name"]]
    assert [t["status"] for t in shuffle] == ["passed", "passed", "failed", "passed", "failed"]  # float32 cases fail
    assert all("dtype expected float32 (the inputs' dtype), got float64" in t["output"] for t in shuffle[2::2])
    backward = [t for t in tests if "backward" in t["name"]]
    assert all("died in channel_shuffle_backward() (exit code 3) after" in t["output"] for t in backward)


def test_forbidden_imports_found_statically():
    source = "import numpy\nfrom gconv_edu.groups import channel_shuffle\nimport torch.nn as nn\n__import__('jax')\n"
    found = forbidden_imports(ast.parse(source))
    assert found == ["import of gconv_edu.groups at line 2", "import of torch.nn at line 3", "import of jax at line 4"]
    assert forbidden_imports(ast.parse("import numpy as np\nfrom . import gconv_edu_helper\n")) == []


def test_points_split_across_parametrized_cases(wrong_results):
    tests = _tests_of(wrong_results, "ex4_db_mean.py")
    by_test = {}
    for test in tests:
        by_test.setdefault(test["name"].split(" [")[0], []).append(test["max_score"])
    assert {name: round(sum(points), 9) for name, points in by_test.items()} == {
        "ex4: dx": 10,
        "ex4: dw": 8,
        "ex4: db": 3,
        "ex4: dx, dw and db, hidden case": 4,
    }
    # only db's 3 points and the hidden cases' 4 (db is checked there too) are lost
    assert _exercise(wrong_results, "ex4_db_mean.py")["score"] == pytest.approx(18)


def test_gradescope_and_json_outputs(tmp_path, capsys):
    files = [str(SOLUTIONS_DIR / "ex5_shuffle.py"), str(WRONG / "ex5_wrong_shuffle_order.py")]
    outputs = ["--gradescope", str(tmp_path / "results.json"), "--json", str(tmp_path / "all.json")]
    code = main([*files, *outputs, "--seed", str(SEED)])
    assert code == 0  # graded: 0 whatever the score
    table = capsys.readouterr().out
    # Two files of one exercise: both graded, the exercise counted once (the better file).
    assert "Score: 10 / 10" in table and "5.2.1" in table and "NOT COUNTED in the total: ex5 is counted once" in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert isinstance(results["score"], float) and isinstance(results["execution_time"], float)
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"])) == pytest.approx(10)
    assert len(results["tests"]) == 28 and len({t["number"] for t in results["tests"]}) == 28  # numbers unique
    for test in results["tests"]:
        assert set(GRADESCOPE_TEST_FIELDS) <= set(test)
        assert isinstance(test["name"], str) and isinstance(test["number"], str) and isinstance(test["output"], str)
        assert 0 <= test["score"] <= test["max_score"] and test["status"] in ("passed", "failed")
        assert test["output_format"] == "text" and test["visibility"] == "visible"
    assert sum(t["max_score"] for t in results["tests"]) == 10
    assert len({t["name"] for t in results["tests"]}) == 28  # two ex5 files: names stay unique
    full = json.loads((tmp_path / "all.json").read_text())
    assert full["exercises"][0]["score"] == 10 and full["exercises"][1]["score"] < 10 and full["seed"] == SEED
    assert [e["counted"] for e in full["exercises"]] == [True, False] and full["score"] == full["max_score"] == 10


def test_cli_reports_files_it_cannot_grade(tmp_path, capsys):
    odd = tmp_path / "my_answer.py"
    odd.write_text("x = 1\n")
    assert main([str(odd)]) == 2
    assert "cannot tell which exercise 'my_answer.py' is" in capsys.readouterr().out
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "ex5_shuffle.py").write_text((SOLUTIONS_DIR / "ex5_shuffle.py").read_text())
    results = grade([tmp_path / "submission"])
    assert results["score"] == results["max_score"] == 10  # a folder: its exN_*.py files, the missing ones named
    assert len(results["errors"]) == 5 and "no file for ex1 (expected ex1_naive_forward.py" in results["errors"][0]
    assert f"looked in {tmp_path / 'submission'} and its subfolders; found ex5_shuffle.py" in results["errors"][0]
    with pytest.raises(ValueError, match=r"exN_something\.py"):
        exercise_for_path("solution.py")
    assert exercise_for_path("ex4_mine.py").key == "ex4"


def _pytest(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_plain_pytest_with_student_option_grades_through_the_plugin():
    solution = _pytest("--student", str(SOLUTIONS_DIR / "ex5_shuffle.py"), "-q")
    assert solution.returncode == 0 and "Score: 10 / 10" in solution.stdout, solution.stdout + solution.stderr
    stub = _pytest("--student", str(STUBS_DIR / "ex5_shuffle.py"), "-q")
    assert stub.returncode == 1 and "Score: 0 / 10" in stub.stdout
    assert "not implemented yet" in stub.stdout and "def test_" not in stub.stdout  # one line, no test source


def test_plugin_is_inert_without_student(tmp_path):
    (tmp_path / "test_tiny.py").write_text("def test_one():\n    assert True\n")
    result = _pytest(str(tmp_path / "test_tiny.py"), "-q", "--rootdir", str(tmp_path))
    assert result.returncode == 0 and "gconv-edu grade" not in result.stdout and "Score:" not in result.stdout


def test_instructor_test_module_points_visibility_and_explicit_paths(tmp_path):
    """A test module of one's own, given explicitly: marker points and Gradescope visibility reach the results."""
    (tmp_path / "test_extra.py").write_text(
        "import numpy as np\nimport pytest\n\nEXERCISE = 'ex5'\n\n"
        "@pytest.mark.points(4, visibility='after_published')\n"
        "@pytest.mark.parametrize('groups', [1, 2])\n"
        "def test_hidden(student, groups):\n"
        "    '''hidden shuffle check'''\n"
        "    student.call('channel_shuffle', np.zeros((1, 4, 1, 1)), groups)\n\n"
        "def test_unmarked(student):\n"
        "    student.call('channel_shuffle', np.zeros((1, 4, 1, 1)), 3)\n"
    )
    out = tmp_path / "results.json"
    run = _pytest(
        str(tmp_path / "test_extra.py"),
        "--student",
        str(SOLUTIONS_DIR / "ex5_shuffle.py"),
        "--grading-results",
        str(out),
        "--rootdir",
        str(tmp_path),
    )
    tests = json.loads(out.read_text())["tests"]
    assert [(t["name"], t["max_score"], t["status"], t["visibility"]) for t in tests] == [
        ("ex5: hidden shuffle check [1]", 2.0, "passed", "after_published"),
        ("ex5: hidden shuffle check [2]", 2.0, "passed", "after_published"),
        ("ex5: test_unmarked", 1.0, "failed", "visible"),  # 3 does not divide 4: the student's code raised
    ], run.stdout
    assert "raised ValueError" in tests[2]["output"] and "line" in tests[2]["output"]


# --------------------------------------------------------------------------- the grader defends itself
@pytest.mark.parametrize("name", list(CHEATS))
def test_cheating_results_score_zero(wrong_results, name):
    exercise = _exercise(wrong_results, name)
    assert exercise["max_score"] > 0 and exercise["score"] == 0
    tests = _tests_of(wrong_results, name)
    assert tests and all(t["score"] == 0 and CHEATS[name] in t["output"] for t in tests), tests[0]["output"]


def test_import_hang_is_one_verdict_for_the_exercise(wrong_results):
    exercise = _exercise(wrong_results, "ex5_hangs_at_import.py")
    assert "does not import: timed out after 11 s importing" in exercise["verdict"]  # 1 s + 10 s for importing


def test_self_test_under_main_guard_may_import_anything(wrong_results):
    exercise = _exercise(wrong_results, "ex5_selftest_main_block.py")
    assert exercise["verdict"] is None and exercise["score"] == exercise["max_score"] == 10
    guarded = "if __name__ == '__main__':\n    import gconv_edu\nelse:\n    import torch\n"
    assert forbidden_imports(ast.parse(guarded)) == ["import of torch at line 4"]
    assert forbidden_imports(ast.parse("if __name__ != '__main__':\n    import jax\n")) == ["import of jax at line 2"]


def test_results_are_unpickled_with_an_allow_list():
    arrays = (np.arange(6.0).reshape(2, 3).T, np.float32(2), [slice(0, 2), (1, None)], "text")
    back = safe_loads(pickle.dumps(arrays))
    assert type(back[0]) is np.ndarray and np.array_equal(back[0], arrays[0]) and back[1:] == arrays[1:]
    for evil in (np.ma.masked_all(3), pickle.loads(pickle.dumps(os.getcwd)), Path(".")):
        with pytest.raises(UngradableResult):
            safe_loads(pickle.dumps(evil))


def test_array_and_equality_checks_want_plain_types():
    masked = np.ma.masked_all((2, 2))
    with pytest.raises(GradingFailure, match=r"returned a numpy\.ma\.MaskedArray, expected a plain numpy\.ndarray"):
        check_array("y", masked, np.zeros((2, 2)), "float64", "case")
    assert not close(masked, np.zeros((2, 2)), "float64") and close(np.zeros((2, 2)), np.zeros((2, 2)), "float64")
    with pytest.raises(GradingFailure, match="should be made of ints"):
        check_equal("parameters", mock.ANY, 12, "case")
    with pytest.raises(GradingFailure, match="should be made of ints"):
        check_equal("pair", (12, mock.ANY), (12, 3), "case")
    check_equal("pair", (np.int64(12), 3), (12, 3), "case")  # NumPy integers are fine


def test_fork_and_exit_is_a_death_not_a_timeout_and_the_child_dies(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("GCONV_TEST_PID_FILE", str(pids))
    results = grade([WRONG / "ex5_forks_and_exits.py"], timeout=2.0)
    tests = results["tests"]
    assert tests and all("died in channel_shuffle" in t["output"] and "(exit code 3)" in t["output"] for t in tests)
    children = [int(pid) for pid in pids.read_text().split()]  # two per import: the worker restarts after each death
    assert len(children) >= 2 and not [pid for pid in children if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stderr_is_truncated_by_the_grader_not_by_failing_the_students_writes():
    results = grade([WRONG / "ex5_spams_stderr.py"], timeout=5.0)
    shuffle = [t for t in results["tests"] if "channel_shuffle [" in t["name"]]
    # The 64 MB of writes all succeed (before: OSError "File too large" after 4 MB); the call fails for its own reason.
    assert shuffle and all("raised ValueError: wrote 64 MB" in t["output"] for t in shuffle), shuffle[0]["output"]
    kept = results["exercises"][0]["stderr"]
    assert kept.startswith("x" * 1000) and len(kept) < (64 << 10) + 200
    assert "[stderr truncated by the grader: kept the first 64 KiB of" in kept


def test_a_batch_that_did_not_finish_is_not_graded():
    results = grade([WRONG / "ex1_fakes_results.py"], timeout=5.0)
    assert results["score"] == 0 and not results["exercises"] and not results["tests"]
    assert len(results["errors"]) == 1 and "ex1_fakes_results.py: the grader failed (exit -9)" in results["errors"][0]


def test_a_folder_grades_one_file_per_exercise(tmp_path):
    solution = (SOLUTIONS_DIR / "ex5_shuffle.py").read_text()
    for name in ("ex5_a.py", "ex5_b.py", "ex5_c.py"):
        (tmp_path / name).write_text(solution)
    results = grade([tmp_path])
    assert results["score"] == 0 and not results["exercises"]
    assert any("several files for ex5 (ex5_a.py, ex5_b.py, ex5_c.py): keep one" in e for e in results["errors"])
    (tmp_path / "ex5_shuffle.py").write_text(solution)  # the stub's own name wins
    results = grade([tmp_path])
    assert [Path(e["file"]).name for e in results["exercises"]] == ["ex5_shuffle.py"]
    assert results["score"] == results["max_score"] == 10


def test_gradescope_summary_counts_visible_tests_only():
    def test(number, score, visibility):
        return {
            "exercise": "ex5",
            "file": "/s/ex5_shuffle.py",
            "number": number,
            "name": f"t{number}",
            "score": score,
            "max_score": 1.0,
            "status": "passed" if score else "failed",
            "output": "",
            "visibility": visibility,
        }

    results = {
        "score": 2.0,
        "max_score": 3.0,
        "execution_time": 1.0,
        "errors": [],
        "exercises": [{"exercise": "ex5", "title": "t", "file": "/s/ex5_shuffle.py", "score": 2.0, "max_score": 3.0}],
        "tests": [test("6.1", 1.0, "visible"), test("6.2", 0.0, "visible"), test("6.3", 1.0, "after_published")],
    }
    assert gradescope(results)["output"] == "ex5_shuffle.py: 1 / 2 (visible tests)"


def test_dying_or_raising_at_import_is_one_verdict(tmp_path):
    (tmp_path / "ex5_dies.py").write_text("import os\n\nos._exit(3)\n")
    (tmp_path / "ex2_raises.py").write_text("x = 1\nraise RuntimeError('at import')\n")
    results = grade([tmp_path / "ex5_dies.py", tmp_path / "ex2_raises.py"])
    verdicts = {Path(e["file"]).name: e["verdict"] for e in results["exercises"]}
    assert (
        "ex5_dies.py does not import: the process running your code died importing (exit code 3)"
        in verdicts["ex5_dies.py"]
    )
    assert verdicts["ex2_raises.py"] == "ex2_raises.py does not import: RuntimeError: at import (line 2)"
    assert all(t["score"] == 0 and "does not import" in t["output"] for t in results["tests"])
