"""The exercises: their file names, the functions each must define (a stable contract), and where their tests are.

Numbered in lesson order: ex1 (lesson 01, the naive forward pass), ex2 (lessons 02/03, groups and their cost),
ex3 (04, im2col), ex4 (05, backward), ex5 (06, channel shuffle), ex6 (07, Numba).

A file is matched to its exercise by its name, forgivingly: ``ex1_naive_forward.py``, ``Ex1-naive-forward.py``,
``ex1_naive_forward (1).py`` (a browser's second download), ``ex1_mine.py`` and ``ex1_naive_forward.ipynb`` are all ex1.
Argument names are used only in feedback ("modified its input x in place").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
TESTS_DIR = PACKAGE_DIR / "exercise_tests"
# The reference solutions live in the checkout's instructor/ folder, never in the package students install.
INSTRUCTOR_DIR = PACKAGE_DIR.parents[1] / "instructor"
SOLUTIONS_DIR = INSTRUCTOR_DIR / "solutions"

CONV_ARGS = ("x", "weight", "bias", "stride", "padding", "dilation", "groups")
SUFFIXES = (".py", ".ipynb")


def stubs_dir() -> Path:
    """The exercise stubs: ``exercises/`` of :func:`gconv_edu.course.lessons_dir` (a checkout's or the wheel's copy)."""
    from ..course import lessons_dir

    return lessons_dir() / "exercises"


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``key`` 'ex1', the stub's file name, its functions' argument names, per-call time limits."""

    number: int
    stub: str
    title: str
    lesson: str
    functions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: float = 5.0
    first_call_allowance: float = 0.0  # extra seconds for a call with new argument types (Numba compiles then)

    @property
    def key(self) -> str:
        return f"ex{self.number}"

    @property
    def test_module(self) -> Path:
        return TESTS_DIR / f"test_{Path(self.stub).stem}.py"


EXERCISES: dict[str, Exercise] = {
    exercise.key: exercise
    for exercise in (
        Exercise(
            1, "ex1_naive_forward.py", "the forward pass with explicit loops", "01", {"conv2d_forward": CONV_ARGS}
        ),
        Exercise(
            2,
            "ex2_groups.py",
            "channel groups and what they cost",
            "02-03",
            {
                "group_slices": ("c_in", "c_out", "groups"),
                "conv_cost": ("c_in", "c_out", "kernel_size", "out_size", "groups", "bias"),
            },
        ),
        Exercise(
            3,
            "ex3_im2col.py",
            "im2col and one batched matrix product",
            "04",
            {"im2col": ("x", "kernel_size", "stride", "padding", "dilation"), "conv2d_forward": CONV_ARGS},
        ),
        Exercise(
            4,
            "ex4_backward.py",
            "the backward pass",
            "05",
            {"conv2d_backward": ("dy", "x", "weight", "stride", "padding", "dilation", "groups")},
        ),
        Exercise(
            5,
            "ex5_shuffle.py",
            "channel shuffle and its gradient",
            "06",
            {"channel_shuffle": ("x", "groups"), "channel_shuffle_backward": ("dy", "groups")},
        ),
        # Numba compiles on the first call of each argument-type signature: seconds on a busy machine.
        Exercise(
            6, "ex6_numba.py", "the forward pass compiled with Numba", "07", {"conv2d_forward": CONV_ARGS}, 5.0, 60.0
        ),
    )
}

# "ex", the number, then nothing or a separator and anything; "Ex1-naive (1).py" too.
_NAME = re.compile(r"^ex(\d+)(?:[-_ .].*)?$", re.IGNORECASE)
_DOWNLOAD_COPY = re.compile(r"\s*\(\d+\)$")


def canonical_name(path: str | Path) -> str:
    """The name a file would have without a browser's `` (1)``, in lower case with ``_`` for ``-`` and spaces:
    ``Ex1-Naive Forward (1).py`` -> ``ex1_naive_forward.py``."""
    path = Path(path)
    stem = _DOWNLOAD_COPY.sub("", path.stem)
    return re.sub(r"[-\s]+", "_", stem.strip()).lower() + path.suffix.lower()


def exercise_for_path(path: str | Path) -> Exercise:
    """The exercise a student file belongs to, from its name ``exN...py`` (or ``.ipynb``); ValueError otherwise."""
    name = Path(path).name
    match = _NAME.match(Path(name).stem) if Path(name).suffix.lower() in SUFFIXES else None
    if not match or f"ex{int(match.group(1))}" not in EXERCISES:
        known = ", ".join(e.stub for e in EXERCISES.values())
        raise ValueError(
            f"cannot tell which exercise {name!r} is: name it exN_something.py (or .ipynb), one of: {known}"
        )
    return EXERCISES[f"ex{int(match.group(1))}"]


def is_exercise_name(path: str | Path) -> bool:
    """Whether :func:`exercise_for_path` recognises the file's name."""
    try:
        exercise_for_path(path)
    except ValueError:
        return False
    return True
