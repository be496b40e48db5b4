"""The autograder: exercise tests with points, run on a student's file in a sandboxed worker process.

``gconv-edu grade FILE`` (:mod:`.cli`) or ``pytest --student FILE`` (:mod:`.plugin`). The pieces:
:mod:`.exercises` (which functions each exercise defines), :mod:`.sandbox` (the worker process, timeouts, forbidden
imports), :mod:`.cases` (seeded test cases and references), :mod:`.checks` and :mod:`.hints` (one-line feedback),
:mod:`.flows` (one convolution test), ``exercise_tests/`` (the tests), :mod:`.report` (table, Gradescope, JSON).
"""

from .exercises import EXERCISES, exercise_for_path

__all__ = ["EXERCISES", "exercise_for_path"]
