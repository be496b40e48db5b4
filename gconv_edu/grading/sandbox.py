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
import io
import os
import pickle
import signal
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


WORKER_MARK = "GCONV_EDU_GRADING_WORKER"  # in each worker's environment: finds what it left behind
_adopting = False  # set by adopt_orphans()


def adopt_orphans() -> bool:
    """Linux: make this process the parent of its descendants' orphans (PR_SET_CHILD_SUBREAPER), so that a process a
    worker forked into a session of its own (beyond ``killpg``) is found and killed when the worker is closed.

    Only for a process that does nothing but grade (``gconv-edu grade``'s pytest batches): orphans of any other
    child it might have would become its zombies. True when it took effect.
    """
    global _adopting
    try:
        import ctypes

        _adopting = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # 36 = PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _adopting = False
    return _adopting


def _kill_adopted(mark: str) -> None:
    """Kill and reap this process's children carrying ``mark`` in their environment (a closed worker's orphans)."""
    wanted, me = f"{WORKER_MARK}={mark}".encode(), os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != me or wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            os.waitpid(int(entry.name), 0)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read


class GradingFailure(AssertionError):
    """A test failed; ``str(error)`` is the one-line feedback shown to the student."""


class StudentError(GradingFailure):
    """The student's code raised, hung, crashed or returned something that cannot be graded."""


class ExerciseVerdict(GradingFailure):
    """The whole exercise scores zero (the file does not import, or it uses a forbidden package)."""


# What a result may be made of: the grader unpickles nothing else (an object's __reduce__ would run code in the grader).
SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "slice"),
    ("builtins", "complex"),
}
# Bytes of the worker's stderr kept (a print in a loop must not fill the disk); the tail says why it crashed.
STDERR_LIMIT = 4 << 20


class UngradableResult(pickle.UnpicklingError):
    """The worker sent something other than arrays, numbers, strings, slices and containers of them."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UngradableResult(f"{module}.{name}")


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data`` allowing only NumPy arrays/scalars/dtypes, slices and builtin containers and numbers."""
    return _RestrictedUnpickler(io.BytesIO(data)).load()


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (either order): its body never runs when the grader imports the file."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    values = [s.value for s in sides if isinstance(s, ast.Constant)]
    return isinstance(node.test.ops[0], ast.Eq) and names == ["__name__"] and values == ["__main__"]


def _walk_skipping_main(tree: ast.AST) -> Any:
    """ast.walk without the bodies of ``if __name__ == "__main__":`` (their ``else`` is still scanned)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _is_main_guard(node):
            todo += node.orelse
            continue
        todo += list(ast.iter_child_nodes(node))[::-1]


def forbidden_imports(tree: ast.AST, forbidden: tuple[str, ...] = FORBIDDEN_MODULES) -> list[str]:
    """Imports of forbidden packages in a parsed file, as 'import of NAME at line N' (also __import__/import_module).

    A self-test under ``if __name__ == "__main__":`` may import anything: the grader never runs it (the worker imports
    the file under another name, and its import blocker still guards whatever does run).
    """
    found = []
    for node in _walk_skipping_main(tree):
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
        self._mark = f"{os.getpid()}-{id(self)}-{time.monotonic_ns()}"
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
        self._log.seek(0)
        self._log.truncate()  # the previous worker is dead: its output was read, and the size limit starts over
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
                    str(STDERR_LIMIT),
                ],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # a print in an infinite loop must not fill the disk
                stderr=self._log,  # bounded by the worker's RLIMIT_FSIZE
                cwd=str(self.path.parent),
                env={**_worker_environment(), WORKER_MARK: self._mark},
                start_new_session=True,  # its own process group: close() kills whatever it forked too
            )
        finally:
            child.close()
        self._connection = Connection(parent.detach())
        self._seen_signatures.clear()
        # The import report; importing is given the first-call allowance too (numba's own import is slow).
        # Any failure here (exception, hang, crash) is the verdict for the whole exercise: restarting would only
        # repeat it on every test.
        try:
            status, payload, _, violations = self._receive(
                self.timeout + self.first_call_allowance + 10, "importing", expect=list
            )
        except StudentError as error:
            self.close()
            self.verdict = f"{self.path.name} does not import: {error}"
            raise ExerciseVerdict(self.verdict) from None
        self._forbid(violations)
        if status == "error":
            self.verdict = f"{self.path.name} does not import: {_describe_error(payload)}"
            self.close()
            raise ExerciseVerdict(self.verdict)
        self.functions = payload

    def close(self) -> None:
        """Stop the worker and everything it started in its process group (if any); the next call starts a fresh one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)  # the group outlives the worker while a child lives
            except (ProcessLookupError, PermissionError):
                pass
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None
            if _adopting:
                _kill_adopted(self._mark)

    def __del__(self) -> None:
        self.close()

    def _log_tail(self) -> str:
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - 2000))
        lines = [line for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""

    def _receive(self, timeout: float, doing: str, note: str = "", expect: type | None = None) -> tuple:
        """The worker's next message ``(status, payload, modified, violations)``, unpickled with :func:`safe_loads`.

        Raises :class:`StudentError` when the worker times out, dies (also while a child it forked keeps the socket
        open), or sends a payload that is not plain data.
        """
        assert self._connection is not None and self._process is not None
        start = time.monotonic()
        while not self._connection.poll(min(0.05, max(0.0, start + timeout - time.monotonic()))):
            if self._process.poll() is not None:
                self._died(doing, start)
            if time.monotonic() - start >= timeout:
                self._timeouts += 1
                self.close()
                raise StudentError(f"timed out after {timeout:g} s {doing} ({note}an infinite loop, or far too slow?)")
        try:
            data = self._connection.recv_bytes()
        except (EOFError, OSError):
            self._died(doing, start)
        try:
            message = safe_loads(data)
        except UngradableResult as error:
            raise StudentError(f"{doing}: returned an object that cannot be graded ({error})") from None
        except Exception as error:  # a malformed message: the worker itself was tampered with
            self.close()
            raise StudentError(f"sent a message that cannot be read {doing} ({type(error).__name__})") from None
        if not (isinstance(message, tuple) and len(message) == 4 and message[0] in ("ok", "error")):
            self.close()
            raise StudentError(f"sent a message that cannot be read {doing}")
        if message[0] == "error" and not _is_error_info(message[1]):
            message = ("error", {"type": "UnknownError", "message": "", "line": None}, [], message[3])
        if expect is not None and message[0] == "ok" and not isinstance(message[1], expect):
            raise StudentError(f"sent a message that cannot be read {doing}")
        violations = message[3] if isinstance(message[3], list) else []
        return message[0], message[1], message[2], [str(v) for v in violations]

    def _died(self, doing: str, start: float) -> None:
        assert self._process is not None
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        tail = self._log_tail()
        self.close()
        elapsed = time.monotonic() - start
        raise StudentError(
            f"the process running your code died {doing} (exit code {code}) after {elapsed:.1f} s"
            + (f": {tail}" if tail else "")
        )

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
        if function not in [name for name in self.functions or [] if isinstance(name, str)]:
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
        if status == "error" and payload["type"] == "UngradableResult":
            raise StudentError(
                f"{function}() returned an object that cannot be graded ({payload['message']}): return plain "
                "numpy.ndarray / int / tuple values as the docstring says"
            )
        if status == "error":
            raise StudentError(f"{function}() raised {_describe_error(payload)}")
        modified = [i for i in modified if type(i) is int] if isinstance(modified, list) else []
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
        _, payload, _, violations = self._receive(self.timeout, "inspecting the module", expect=dict)
        self._forbid(violations)
        return {str(k): v for k, v in payload.items() if type(v) is int}


def _type_key(value: Any) -> tuple:
    """What Numba specialises on: array dtype and rank, else the Python type (None vs array for bias matters)."""
    if hasattr(value, "dtype") and hasattr(value, "ndim"):
        return ("array", str(value.dtype), value.ndim)
    if isinstance(value, tuple):
        return ("tuple", *(type(v).__name__ for v in value))
    return (type(value).__name__,)


def _is_error_info(info: Any) -> bool:
    return isinstance(info, dict) and all(isinstance(info.get(k, ""), str) for k in ("type", "message"))


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
