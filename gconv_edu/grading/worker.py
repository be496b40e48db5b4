"""The process that runs a student's file: imports it, then answers calls until its pipe closes.

Started by :class:`gconv_edu.grading.sandbox.StudentFile` as ``python -I -c <this file's source> FD PATH FORBIDDEN
PARENT_PID FILE_SIZE_LIMIT MEMORY_LIMIT``, in a session of its own (and, in the Gradescope build, as an unprivileged
user that cannot read the grader's package: that is why its source is passed with ``-c``). A plain script: it imports
nothing of gconv_edu (a student file must not reach the reference implementation).

Why a process: an infinite loop inside a NumPy or Numba C loop cannot be interrupted by a signal, but a process can
always be killed. The grader kills this one when a call runs past its timeout and starts a fresh one for the next test.

Protocol (``multiprocessing.connection`` framing over one socket, pickled tuples):
    -> ("call", function_name, args)     <- ("ok", result, {"after": args_after_the_call, "aliases": [...]}, violations)
    -> ("profile", function_name, args)  <- ("ok", {"total": s, "compiled": s, "compiled_calls": n}, {}, violations)
    -> ("numba", None, None)             <- ("ok", {name: ran_signatures}, {}, violations)
    <- ("error", {type, message, line}, {}, violations)  an exception in the student's code, or a result that is not
                                                           plain data (type "UngradableResult", see ``_ungradable``)
The grader compares ``after`` with its own copy of the arguments (so a student file that patches NumPy here cannot
hide a modified input), and unpickles everything with an allow-list (NumPy arrays, scalars, dtypes, slices, builtin
containers): the checks here only give clearer messages. The first message is the import report:
("ok", function_names, {}, violations) or ("error", ...).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time
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


def _arrays(value, path: str = "result", depth: int = 0):
    """(where, array) for every ndarray in a result: the result itself, or the items of a tuple/list result."""
    if type(value).__module__.startswith("numpy") and hasattr(value, "__array_interface__"):
        yield path, value
    elif type(value) in (tuple, list) and depth < 3:
        for index, part in enumerate(value):
            yield from _arrays(part, f"{path}[{index}]", depth + 1)


def _aliases(result, args, shares) -> list:
    """(where in the result, argument position) for each result array that is, or shares memory with, an input.

    Must run before pickling: a pickled view arrives in the grader as a copy. ``shares`` is ``np.shares_memory`` as it
    was before the student's file was imported.
    """
    found = []
    for where, array in _arrays(result):
        for position, arg in enumerate(args):
            if type(arg).__module__.startswith("numpy") and hasattr(arg, "__array_interface__"):
                try:
                    same = array is arg or shares(array, arg, max_work=1 << 20)
                except Exception:  # too hard to decide: overlapping bounds, so treat as shared
                    same = True
                if same:
                    found.append((where, position))
    return found


def _limit_resources(file_size: int, memory: int) -> None:
    """Writes past ``file_size`` bytes into a file fail with OSError (Python ignores SIGXFSZ); allocations past
    ``memory`` bytes of address space raise MemoryError (0: no limit). stderr is a pipe: not limited."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        if memory > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ImportError, ValueError, OSError):
        pass  # not POSIX: unbounded


def _dispatchers(module) -> dict:
    """Module-level Numba dispatchers of the student's module, by name."""
    return {
        name: value
        for name, value in vars(module).items()
        if type(value).__module__.startswith("numba") and hasattr(value, "signatures")
    }


def _numba_report(module) -> dict[str, int]:
    """Module-level Numba dispatchers and how many signatures each has compiled so far."""
    return {name: len(value.signatures) for name, value in _dispatchers(module).items()}


def _profile(module, name: str, args: tuple) -> dict:
    """Run ``name(*args)`` with every module-level Numba dispatcher timed: how much of the call ran compiled code.

    The outermost dispatcher call is timed (one compiled function calling another counts once).
    """
    clock, inside, depth = time.perf_counter, [0.0, 0], [0]
    originals = _dispatchers(module)

    def timed(dispatcher):
        def call(*a, **k):
            if depth[0]:
                return dispatcher(*a, **k)
            depth[0] += 1
            start = clock()
            try:
                return dispatcher(*a, **k)
            finally:
                inside[0] += clock() - start
                inside[1] += 1
                depth[0] -= 1

        return call

    for key, dispatcher in originals.items():
        setattr(module, key, timed(dispatcher))
    start = clock()
    try:
        getattr(module, name)(*args)
    finally:
        total = clock() - start
        for key, dispatcher in originals.items():
            setattr(module, key, dispatcher)
    return {"total": total, "compiled": inside[0], "compiled_calls": inside[1]}


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


def _send(connection: Connection, message: tuple) -> None:
    try:
        connection.send(message)
    except Exception:  # e.g. a generator or a lambda: pickling fails before anything is written
        info = {"type": "UnpicklableResult", "message": f"returned a {type(message[1]).__name__}", "line": None}
        connection.send(("error", info, {}, message[3]))


def main(argv: list[str]) -> None:
    fd, student_path, forbidden = int(argv[1]), argv[2], [name for name in argv[3].split(",") if name]
    _die_with_parent(int(argv[4]))
    _limit_resources(int(argv[5]), int(argv[6]))
    connection = Connection(fd)
    import numpy as np  # before the student's code runs: the alias check keeps NumPy's own function

    shares = np.shares_memory
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
        connection.send(("error", _error(error, student_path), {}, blocker.violations))
        return
    functions = [name for name, value in vars(module).items() if callable(value)]
    connection.send(("ok", functions, {}, blocker.violations))

    while True:
        try:
            kind, name, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            if kind == "numba":
                connection.send(("ok", _numba_report(module), {}, blocker.violations))
                continue
            if kind == "profile":
                connection.send(("ok", _profile(module, name, args), {}, blocker.violations))
                continue
            result = getattr(module, name)(*args)
        except BaseException as error:  # sys.exit() in student code is a failed call too, not the end of grading
            connection.send(("error", _error(error, student_path), {}, blocker.violations))
            continue
        odd = _ungradable(result)
        if odd:
            info = {"type": "UngradableResult", "message": odd, "line": None}
            connection.send(("error", info, {}, blocker.violations))
            continue
        after = [a if type(a) is np.ndarray else None for a in args]
        _send(
            connection, ("ok", result, {"after": after, "aliases": _aliases(result, args, shares)}, blocker.violations)
        )


if __name__ == "__main__":
    main(sys.argv)
