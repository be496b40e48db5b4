"""The exercises: their file names, the functions each must define (a stable contract), and where their tests are.

A student's file is matched to its exercise by its name, ``exN_*.py`` (e.g. ``ex2_naive_forward.py`` or
``ex2_mine.py``). Argument names are used only in feedback ("modified its input x in place").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
TESTS_DIR = PACKAGE_DIR / "exercise_tests"
SOLUTIONS_DIR = PACKAGE_DIR / "solutions"
STUBS_DIR = PACKAGE_DIR.parents[1] / "lessons" / "exercises"  # present in a checkout, not in an installed wheel

CONV_ARGS = ("x", "weight", "bias", "stride", "padding", "dilation", "groups")


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``key`` 'ex2', the stub's file name, its functions' argument names, per-call time limits."""

    number: int
    stub: str
    title: str
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
            1,
            "ex1_groups.py",
            "channel groups and what they cost",
            {
                "group_slices": ("c_in", "c_out", "groups"),
                "conv_cost": ("c_in", "c_out", "kernel_size", "out_size", "groups", "bias"),
            },
        ),
        Exercise(2, "ex2_naive_forward.py", "the forward pass with explicit loops", {"conv2d_forward": CONV_ARGS}),
        Exercise(
            3,
            "ex3_im2col.py",
            "im2col and one batched matrix product",
            {"im2col": ("x", "kernel_size", "stride", "padding", "dilation"), "conv2d_forward": CONV_ARGS},
        ),
        Exercise(
            4,
            "ex4_backward.py",
            "the backward pass",
            {"conv2d_backward": ("dy", "x", "weight", "stride", "padding", "dilation", "groups")},
        ),
        # Numba compiles on the first call of each argument-type signature: seconds on a busy machine.
        Exercise(5, "ex5_numba.py", "the forward pass compiled with Numba", {"conv2d_forward": CONV_ARGS}, 5.0, 60.0),
        Exercise(
            6,
            "ex6_shuffle.py",
            "channel shuffle and its gradient",
            {"channel_shuffle": ("x", "groups"), "channel_shuffle_backward": ("dy", "groups")},
        ),
    )
}

_NAME = re.compile(r"^ex(\d+)_\w*\.py$")


def exercise_for_path(path: str | Path) -> Exercise:
    """The exercise a student file belongs to, from its name ``exN_*.py``; ValueError naming the file otherwise."""
    name = Path(path).name
    match = _NAME.match(name)
    if not match or f"ex{int(match.group(1))}" not in EXERCISES:
        known = ", ".join(e.stub for e in EXERCISES.values())
        raise ValueError(f"cannot tell which exercise {name!r} is: name it exN_something.py, one of: {known}")
    return EXERCISES[f"ex{int(match.group(1))}"]
