"""The grader's failure types: each one's ``str()`` is the one line of feedback the student sees."""

from __future__ import annotations


class GradingFailure(AssertionError):
    """A test failed; ``str(error)`` is the one-line feedback shown to the student."""


class StudentError(GradingFailure):
    """The student's code raised, hung, crashed or returned something that cannot be graded."""


class ExerciseVerdict(GradingFailure):
    """The whole exercise scores zero (the file does not import, or it uses a forbidden package)."""
