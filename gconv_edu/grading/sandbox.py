"""Run a student's file in a worker process, one call at a time, each with a timeout.

:class:`StudentFile` is what the exercise tests talk to: ``student.call("conv2d_forward", x, weight, ...)`` returns the
student's result or raises a :class:`GradingFailure` whose message is the one line the student sees. The worker
(:mod:`gconv_edu.grading.worker`) is started lazily, kept across tests (so a file is imported once, and Numba compiles
once), and killed and restarted when a call times out or the process dies: one infinite loop costs one test.

Before any code runs, the file is parsed (a syntax error is reported with its line, without starting a worker) and
scanned for imports of forbidden packages; the worker blocks the same imports at run time.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Packages that compute the exercise for the student. gconv_edu is the reference itself; the others ship a conv2d.
FORBIDDEN_MODULES = ("gconv_edu", "torch", "tensorflow", "jax")
WORKER = Path(__file__).with_name("worker.py")


class GradingFailure(AssertionError):
    """A test failed; ``str(error)`` is the one-line feedback shown to the student."""


class StudentError(GradingFailure):
    """The student's code raised, hung, crashed or returned something that cannot be graded."""


class ExerciseVerdict(GradingFailure):
    """The whole exercise scores zero (the file does not import, or it uses a forbidden package)."""


def forbidden_imports(tree: ast.AST, forbidden: tuple[str, ...] = FORBIDDEN_MODULES) -> list[str]:
    """Imports of forbidden packages in a parsed file, as 'import of NAME at line N' (also __import__/import_module)."""
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if callee in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [f"import of {name} at line {node.lineno}" for name in names if name.split(".")[0] in forbidden]
    return found


class StudentFile:
    """A student's exercise file, run in a worker process.

    ``timeout``: seconds per call. ``first_call_allowance``: extra seconds for the first call of each argument
    signature in a worker's life (Numba compiles then); at most 15 s once a call of this file has timed out.
    """

    def __init__(self, path: str | Path, timeout: float = 5.0, first_call_allowance: float = 0.0) -> None:
        self.path = Path(path).resolve()
        self.timeout = float(timeout)
        self.first_call_allowance = float(first_call_allowance)
        self.verdict: str | None = None  # set when the whole exercise scores zero
        self.violations: list[str] = []
        self.functions: list[str] | None = None
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._log = tempfile.TemporaryFile()  # the worker's stderr: why it crashed, if it did
        self._seen_signatures: set[tuple] = set()
        self._timeouts = 0
        self.last_call_seconds = 0.0  # how long the latest call took (hints that re-run code skip slow files)
        self._preflight()

    # ------------------------------------------------------------------ static checks
    def _preflight(self) -> None:
        try:
            source = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            self.verdict = f"cannot read {self.path.name}: {error}"
            return
        try:
            tree = ast.parse(source, filename=str(self.path))
        except SyntaxError as error:
            self.verdict = f"{self.path.name} does not import: SyntaxError: {error.msg} (line {error.lineno})"
            return
        self._forbid(forbidden_imports(tree))

    def _forbid(self, violations: list[str]) -> None:
        new = [v for v in violations if v not in self.violations]
        if new:
            self.violations += new
            self.verdict = (
                f"{self.path.name} uses a library that computes the exercise ({'; '.join(self.violations)}): "
                "no credit; write your own implementation with NumPy"
                + (" and Numba" if "numba" in self.path.name else "")
            )

    # ------------------------------------------------------------------ worker lifecycle
    def _start(self) -> None:
        parent, child = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    str(WORKER),
                    str(child.fileno()),
                    str(self.path),
                    ",".join(FORBIDDEN_MODULES),
                    str(os.getpid()),
                ],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # a print in an infinite loop must not fill the disk
                stderr=self._log,
                cwd=str(self.path.parent),
                env=_worker_environment(),
            )
        finally:
            child.close()
        self._connection = Connection(parent.detach())
        self._seen_signatures.clear()
        # The import report; importing is given the first-call allowance too (numba's own import is slow).
        status, payload, _, violations = self._receive(self.timeout + self.first_call_allowance + 10, "importing")
        self._forbid(violations)
        if status == "error":
            self.verdict = f"{self.path.name} does not import: {_describe_error(payload)}"
            self.close()
            raise ExerciseVerdict(self.verdict)
        self.functions = payload

    def close(self) -> None:
        """Stop the worker (if any); the next call starts a fresh one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None

    def __del__(self) -> None:
        self.close()

    def _log_tail(self) -> str:
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - 2000))
        lines = [line for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""

    def _receive(self, timeout: float, doing: str, note: str = "") -> tuple:
        assert self._connection is not None
        start = time.monotonic()
        if not self._connection.poll(timeout):
            self._timeouts += 1
            self.close()
            raise StudentError(f"timed out after {timeout:g} s {doing} ({note}an infinite loop, or far too slow?)")
        try:
            return self._connection.recv()
        except (EOFError, OSError):
            code = self._process.wait(timeout=5) if self._process else None
            tail = self._log_tail()
            self.close()
            elapsed = time.monotonic() - start
            raise StudentError(
                f"the process running your code died {doing} after {elapsed:.1f} s (exit code {code})"
                + (f": {tail}" if tail else "")
            ) from None

    # ------------------------------------------------------------------ calls
    def _ensure_started(self) -> None:
        if self.verdict:
            raise ExerciseVerdict(self.verdict)
        if self._process is None or self._process.poll() is not None:
            self.close()
            self._start()

    def call(self, function: str, *args: Any, argument_names: tuple[str, ...] = ()) -> Any:
        """``function(*args)`` in the worker; the student's result, or a :class:`GradingFailure` with one line.

        A call that changes one of its array arguments fails (inputs must never be modified), naming the argument.
        """
        self._ensure_started()
        if function not in (self.functions or []):
            raise StudentError(f"{self.path.name} does not define {function}()")
        signature = (function, *(_type_key(a) for a in args))
        timeout, note = self.timeout, ""
        if signature not in self._seen_signatures and self.first_call_allowance:
            # After a timeout the file is known to hang somewhere: a long compile allowance for every later test
            # would turn one infinite loop into many minutes. A conv loop compiles in seconds; 15 s stays generous.
            allowance = self.first_call_allowance if not self._timeouts else min(self.first_call_allowance, 15.0)
            timeout, note = timeout + allowance, f"{allowance:g} s of it allowed for compiling; "
        assert self._connection is not None
        start = time.monotonic()
        self._connection.send(("call", function, args))
        status, payload, modified, violations = self._receive(timeout, f"in {function}()", note)
        self.last_call_seconds = time.monotonic() - start
        self._seen_signatures.add(signature)
        self._forbid(violations)
        if self.verdict:
            raise ExerciseVerdict(self.verdict)
        if status == "error" and payload["type"] == "NotImplementedError":
            raise StudentError(f"{function}() is not implemented yet (it raises NotImplementedError)")
        if status == "error":
            raise StudentError(f"{function}() raised {_describe_error(payload)}")
        if modified:
            names = [argument_names[i] if i < len(argument_names) else f"argument {i + 1}" for i in modified]
            raise StudentError(
                f"{function}() modified its input {', '.join(names)} in place; inputs must stay unchanged "
                "(work on a copy, e.g. np.pad returns a new array)"
            )
        return payload

    def numba_signatures(self) -> dict[str, int]:
        """Module-level Numba dispatchers of the student's file and how many signatures each compiled so far."""
        self._ensure_started()
        assert self._connection is not None
        self._connection.send(("numba", None, None))
        _, payload, _, violations = self._receive(self.timeout, "inspecting the module")
        self._forbid(violations)
        return payload


def _type_key(value: Any) -> tuple:
    """What Numba specialises on: array dtype and rank, else the Python type (None vs array for bias matters)."""
    if hasattr(value, "dtype") and hasattr(value, "ndim"):
        return ("array", str(value.dtype), value.ndim)
    if isinstance(value, tuple):
        return ("tuple", *(type(v).__name__ for v in value))
    return (type(value).__name__,)


def _describe_error(info: dict) -> str:
    text = info["type"] + (f": {info['message']}" if info.get("message") else "")
    if info.get("line"):
        text += f" (line {info['line']})"
    return text


def _worker_environment() -> dict[str, str]:
    # One BLAS thread per worker: grading runs next to other work, and a student's matmul does not need more.
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.setdefault("NUMBA_NUM_THREADS", "2")
    return env
