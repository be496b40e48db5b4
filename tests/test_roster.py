"""gconv-edu grade --roster: one folder per student into one gradebook CSV (and a JSON with the detail)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from gconv_edu.grading.exercises import SOLUTIONS_DIR, stubs_dir

ROOT = Path(__file__).resolve().parents[1]
WRONG = ROOT / "tests" / "wrong_solutions"


def test_roster_grades_each_student_folder_into_one_csv_row(tmp_path):
    roster = tmp_path / "submissions"
    files = {
        "alice": {"ex2_groups.py": SOLUTIONS_DIR / "ex2_groups.py", "ex5_shuffle.py": SOLUTIONS_DIR / "ex5_shuffle.py"},
        "bob": {"deep/Ex5-shuffle (1).py": WRONG / "ex5_wrong_shuffle_order.py"},  # ex2 missing; ex5 wrong
        "carol": {"ex2_groups.py": stubs_dir() / "ex2_groups.py", "ex5_shuffle.py": stubs_dir() / "ex5_shuffle.py"},
        "dave": {"notes.txt": None},  # nothing to grade
    }
    for student, given in files.items():
        for name, source in given.items():
            target = roster / student / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target) if source else target.write_text("no code\n")
    (roster / ".hidden").mkdir()  # not a student
    run = subprocess.run(
        [sys.executable, "-m", "gconv_edu", "grade", "--roster", str(roster), "--exercises", "ex2", "ex5"]
        + ["--csv", str(tmp_path / "grades.csv"), "--json", str(tmp_path / "grades.json"), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {row["id"]: row for row in csv.DictReader((tmp_path / "grades.csv").open())}
    assert list(rows) == ["alice", "bob", "carol", "dave"]
    assert list(rows["alice"]) == ["id", "ex2", "ex5", "total", "status"]
    assert (rows["alice"]["ex2"], rows["alice"]["ex5"], rows["alice"]["total"]) == ("10", "10", "20")
    assert rows["alice"]["status"] == "graded"
    assert rows["bob"]["ex2"] == "0" and float(rows["bob"]["ex5"]) < 10 and rows["bob"]["status"] == "missing ex2"
    assert rows["carol"]["total"] == "0" and rows["carol"]["status"] == "graded"
    assert rows["dave"]["total"] == "0" and rows["dave"]["status"].startswith("not graded")
    detail = json.loads((tmp_path / "grades.json").read_text())["students"]
    assert set(detail) == set(rows) and all("seed" in detail[s] for s in detail)
    assert "4 students: 2 graded, 2 with a note" in run.stdout
    assert "graded 4/4 students in" in run.stderr  # progress as log lines when stderr is not a terminal
    assert "\r" not in run.stderr


def test_simulated_course_script(tmp_path):
    """scripts/simulate_course.py (the README's roster timing): N folders, every file one of the four kinds."""
    script = ROOT / "scripts" / "simulate_course.py"
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "c"), "20", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    folders = sorted((tmp_path / "c").iterdir())
    assert len(folders) == 20
    files = [f for folder in folders for f in folder.iterdir()]
    assert all(f.name[:3] in {f"ex{i}" for i in range(1, 7)} for f in files)
    assert 0 < len(files) <= 120
    again = subprocess.run([sys.executable, str(script), str(tmp_path / "c"), "20"], capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr
    zero = subprocess.run([sys.executable, str(script), str(tmp_path / "d"), "0"], capture_output=True, text=True)
    assert zero.returncode == 2 and "must be >= 1" in zero.stderr
