"""The process that runs a student's file: imports it, then answers calls until its pipe closes.

Started by :class:`gconv_edu.grading.sandbox.StudentFile` as ``python -I worker.py FD PATH FORBIDDEN PARENT_PID
STDERR_LIMIT``, in a session of its own, a
plain script: it imports nothing of gconv_edu (a student file must not reach the reference implementation, and this
process does not even have it loaded), and ``-I`` keeps the script's own folder off ``sys.path``.

Why a process: an infinite loop inside a NumPy or Numba C loop cannot be interrupted by a signal, but a process can
always be killed. The grader kills this one when a call runs past its timeout and starts a fresh one for the next test.

Protocol (``multiprocessing.connection`` framing over one socket, pickled tuples):
    -> ("call", function_name, args)            <- ("ok", result, modified_arg_positions, violations)
    -> ("numba", None, None)                    <- ("ok", {name: ran_signatures}, [], violations)
    <- ("error", {type, message, line, where})  on an exception in the student's code or an unpicklable result
    <- ("error", {type: "UngradableResult", message: TYPE})  a result that is not plain data (see ``_ungradable``)
The grader unpickles what comes back with an allow-list (NumPy arrays, scalars, dtypes, slices, builtin containers):
the check here only gives a clearer message, the allow-list is what keeps a student's __reduce__ out of the grader.
The first message the worker sends is the import report: ("ok", function_names, [], violations) or ("error", ...).
"""

from __future__ import annotations

import copy
import importlib.abc
import importlib.util
import os
import sys
import traceback
from multiprocessing.connection import Connection


class ForbiddenImportBlocker(importlib.abc.MetaPathFinder):
    """Refuses (and records) any import of the forbidden top-level packages, wherever it happens."""

    def __init__(self, forbidden: list[str], student_path: str) -> None:
        self.forbidden = set(forbidden)
        self.student_path = os.path.abspath(student_path)
        self.violations: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] not in self.forbidden:
            return None
        line = _student_line(traceback.extract_stack(), self.student_path)
        self.violations.append(f"import of {fullname}" + (f" at line {line}" if line else ""))
        raise ImportError(f"importing {fullname} is not allowed in an exercise file")


def _student_line(frames: list[traceback.FrameSummary], student_path: str) -> int | None:
    """The innermost line of the student's file in a stack, if any."""
    lines = [f.lineno for f in frames if os.path.abspath(f.filename) == student_path]
    return lines[-1] if lines else None


def _error(error: BaseException, student_path: str) -> dict:
    frames = traceback.extract_tb(error.__traceback__)
    line = getattr(error, "lineno", None) if isinstance(error, SyntaxError) else None
    line = line or _student_line(frames, student_path)
    message = str(error).splitlines()[0] if str(error) else ""
    return {"type": type(error).__name__, "message": message[:300], "line": line}


def _modified(before: list, after: tuple) -> list[int]:
    """Positions of array arguments whose values changed during the call (NaN compares equal to NaN)."""
    import numpy as np

    changed = []
    for position, (old, new) in enumerate(zip(before, after)):
        if isinstance(old, np.ndarray):
            same = old.shape == new.shape and np.array_equal(old, new, equal_nan=old.dtype.kind in "fc")
            if not same:
                changed.append(position)
    return changed


def _type_name(value) -> str:
    kind = type(value)
    module = kind.__module__
    module = "numpy.ma" if module.startswith("numpy.ma") else "numpy" if module.startswith("numpy") else module
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _ungradable(value, depth: int = 0) -> str | None:
    """The type of the first part of a result that is not plain data (the grader unpickles nothing else), or None.

    Plain: a numpy.ndarray (not a subclass such as a masked array), NumPy scalars, int, float, bool, str, None, and
    slices, tuples and lists of them.
    """
    import numpy as np

    kind = type(value)
    if kind is np.ndarray:
        return None if value.dtype.kind != "O" else _type_name(value) + " of Python objects"
    if kind in (int, float, bool, complex, str, type(None)) or (
        isinstance(value, np.generic) and kind.__module__ == "numpy" and value.dtype.kind != "O"
    ):
        return None
    if kind is slice:
        parts = (value.start, value.stop, value.step)
    elif kind in (tuple, list) and depth < 10:
        parts = value
    else:
        return _type_name(value)
    return next((found for part in parts if (found := _ungradable(part, depth + 1))), None)


def _limit_output(limit: int) -> None:
    """Writes past ``limit`` bytes into a file (stderr is one) fail with OSError (Python ignores SIGXFSZ)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # not POSIX: stderr stays unbounded


def _numba_report(module) -> dict[str, int]:
    """Module-level Numba dispatchers and how many signatures each has compiled so far."""
    report = {}
    for name, value in vars(module).items():
        if type(value).__module__.startswith("numba") and hasattr(value, "signatures"):
            report[name] = len(value.signatures)
    return report


def _die_with_parent(parent: int) -> None:
    """Linux: be killed when the grader dies, even in the middle of a student's infinite loop (no orphans)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the grader kills its workers itself; only a crashed grader could leave one behind
    if os.getppid() != parent:  # the grader died before prctl took effect
        os._exit(1)


def main(argv: list[str]) -> None:
    fd, student_path, forbidden = int(argv[1]), argv[2], [name for name in argv[3].split(",") if name]
    _die_with_parent(int(argv[4]))
    _limit_output(int(argv[5]))
    connection = Connection(fd)
    blocker = ForbiddenImportBlocker(forbidden, student_path)
    sys.meta_path.insert(0, blocker)
    # Student files may import a helper next to them (e.g. ex4 reusing their own ex3 im2col).
    sys.path.insert(0, os.path.dirname(os.path.abspath(student_path)))
    try:
        spec = importlib.util.spec_from_file_location("student_exercise", student_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["student_exercise"] = module
        spec.loader.exec_module(module)
    except BaseException as error:  # SystemExit at import is an import failure too
        connection.send(("error", _error(error, student_path), [], blocker.violations))
        return
    functions = [name for name, value in vars(module).items() if callable(value)]
    connection.send(("ok", functions, [], blocker.violations))

    while True:
        try:
            kind, name, args = connection.recv()
        except (EOFError, OSError):
            return
        if kind == "numba":
            connection.send(("ok", _numba_report(module), [], blocker.violations))
            continue
        before = [copy.deepcopy(a) for a in args]
        try:
            result = getattr(module, name)(*args)
        except BaseException as error:  # sys.exit() in student code is a failed call too, not the end of grading
            connection.send(("error", _error(error, student_path), [], blocker.violations))
            continue
        modified = _modified(before, args)
        odd = _ungradable(result)
        if odd:
            info = {"type": "UngradableResult", "message": odd, "line": None}
            connection.send(("error", info, [], blocker.violations))
            continue
        try:
            connection.send(("ok", result, modified, blocker.violations))
        except Exception:  # e.g. a generator or a lambda: pickling fails before anything is written
            info = {"type": "UnpicklableResult", "message": f"returned a {type(result).__name__}", "line": None}
            connection.send(("error", info, [], blocker.violations))


if __name__ == "__main__":
    main(sys.argv)
