#!/usr/bin/env python3
"""Make a simulated course: one submission folder per student, for timing ``gconv-edu grade --roster``.

Each exercise file is drawn at random: the reference solution (75 %), the stub (10 %), one of the wrong or abusive
files of ``tests/wrong_solutions/`` for that exercise (12 %: infinite loops, 20 GB allocations, forks, hangs at
import, ...), or missing (3 %). Run from a checkout::

    python scripts/simulate_course.py /tmp/course 300 --seed 0
    gconv-edu grade --roster /tmp/course --csv grades.csv --jobs 2
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "instructor" / "solutions"
STUBS = ROOT / "lessons" / "exercises"
WRONG = ROOT / "tests" / "wrong_solutions"
SHARES = (("solution", 0.75), ("stub", 0.10), ("wrong", 0.12), ("missing", 0.03))


def simulate(folder: Path, students: int, seed: int) -> dict[str, int]:
    """Write ``students`` folders into ``folder`` (which must not exist); return how many files of each kind."""
    rng = random.Random(seed)
    counts = {kind: 0 for kind, _ in SHARES}
    wrong = sorted(WRONG.glob("ex*.py"))
    for i in range(students):
        student = folder / f"student{i:03d}"
        student.mkdir(parents=True)
        for solution in sorted(SOLUTIONS.glob("ex*.py")):
            kind = rng.choices([k for k, _ in SHARES], weights=[w for _, w in SHARES])[0]
            choices = [w for w in wrong if w.name.startswith(solution.name[:4])]
            if kind == "wrong" and not choices:
                kind = "stub"
            source = {"solution": solution, "stub": STUBS / solution.name}.get(kind)
            if kind == "wrong":
                source = rng.choice(choices)
            if source is not None:
                shutil.copyfile(source, student / solution.name)
            counts[kind] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the student folders (must not exist)")
    parser.add_argument("students", type=int, help="how many students (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.students < 1:
        parser.error(f"students={args.students} must be >= 1")
    if args.folder.exists():
        parser.error(f"{args.folder} exists: give a new folder")
    if not SOLUTIONS.is_dir():
        parser.error(f"no reference solutions at {SOLUTIONS}: run from a checkout")
    counts = simulate(args.folder, args.students, args.seed)
    print(f"{args.students} students in {args.folder}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
