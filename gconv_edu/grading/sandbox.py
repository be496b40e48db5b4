"""Run a student's file in a worker process, one call at a time, each with a timeout.

:class:`StudentFile` is what the exercise tests talk to: ``student.call("conv2d_forward", x, weight, ...)`` returns the
student's result or raises a :class:`GradingFailure` whose message is the one line the student sees. The worker
(:mod:`gconv_edu.grading.worker`) is started lazily, kept across tests (so a file is imported once, and Numba compiles
once), and killed and restarted when a call times out or the process dies: one infinite loop costs one test.

Before any code runs, the file is parsed (a syntax error is reported with its line, without starting a worker) and
its module-level code is scanned for imports of forbidden packages; the worker blocks the same imports at run time,
wherever they run (a function body's imports count when the grader calls it, not when it is only called under
``if __name__ == "__main__":``).

Containment, small and plain: a process group per worker (killed whole), an address-space limit (``memory_limit``),
a file-size limit, stderr read through a pipe by the grader (the first 64 KiB kept), and optionally another user
(``user=``: the Gradescope build runs student code as one that cannot read the grader's files).
"""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from .channel import FILE_SIZE_LIMIT, StderrBuffer, UngradableResult, safe_loads
from .errors import ExerciseVerdict, StudentError
from .source_scan import FORBIDDEN_MODULES, forbidden_imports

__all__ = ["FORBIDDEN_MODULES", "StudentFile", "UngradableResult", "adopt_orphans", "forbidden_imports", "safe_loads"]

WORKER = Path(__file__).with_name("worker.py")
DEFAULT_MEMORY_LIMIT = 4 << 30  # bytes of address space per worker (gconv-edu grade --memory-limit, in GiB)


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


class StudentFile:
    """A student's exercise file, run in a worker process.

    ``timeout``: seconds per call. ``first_call_allowance``: extra seconds for the first call of each argument
    signature in a worker's life (Numba compiles then); at most 15 s once a call of this file has timed out.
    ``memory_limit``: bytes of address space per worker (0: none); an allocation past it is a MemoryError in that
    call. ``user``: run the worker as this (unprivileged) user; needs root. ``name``: the file's name in feedback
    (a notebook's, when ``path`` is the script made from its code cells).
    """

    def __init__(
        self,
        path: str | Path,
        timeout: float = 5.0,
        first_call_allowance: float = 0.0,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        user: str | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self.name = name or self.path.name
        self.timeout = float(timeout)
        self.first_call_allowance = float(first_call_allowance)
        self.memory_limit = int(memory_limit)
        self.user = user
        self.verdict: str | None = None  # set when the whole exercise scores zero
        self.violations: list[str] = []
        self.functions: list[str] | None = None
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self.stderr = StderrBuffer()  # the worker's stderr, all workers of this file: why it crashed, if it did
        self._home: str | None = None  # the unprivileged user's HOME and Numba cache
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
            self.verdict = f"cannot read {self.name}: {error}"
            return
        try:
            tree = ast.parse(source, filename=str(self.path))
        except SyntaxError as error:
            self.verdict = f"{self.name} does not import: SyntaxError: {error.msg} (line {error.lineno})"
            return
        self._forbid(forbidden_imports(tree))

    def _forbid(self, violations: list[str]) -> None:
        new = [v for v in violations if v not in self.violations]
        if new:
            self.violations += new
            self.verdict = (
                f"{self.name} uses a library that computes the exercise ({'; '.join(self.violations)}): "
                "no credit; write your own implementation with NumPy"
                + (" and Numba" if "numba" in self.name.lower() else "")
            )

    # ------------------------------------------------------------------ worker lifecycle
    def _environment(self) -> dict[str, str]:
        env = {**_worker_environment(), WORKER_MARK: self._mark}
        if self.user is not None:
            if self._home is None:
                import pwd

                entry = pwd.getpwnam(self.user)
                self._home = tempfile.mkdtemp(prefix="gconv-student-")
                os.chown(self._home, entry.pw_uid, entry.pw_gid)
            env.update(HOME=self._home, NUMBA_CACHE_DIR=os.path.join(self._home, "numba-cache"), USER=self.user)
        return env

    def _start(self) -> None:
        parent, child = socket.socketpair()
        stderr_read, stderr_write = os.pipe()
        user = {"user": self.user, "group": _group_of(self.user), "extra_groups": []} if self.user else {}
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-c",
                    WORKER.read_text(),  # the source itself: the worker's user may not be able to read the package
                    str(child.fileno()),
                    str(self.path),
                    ",".join(FORBIDDEN_MODULES),
                    str(os.getpid()),
                    str(FILE_SIZE_LIMIT),
                    str(self.memory_limit),
                ],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # a print in an infinite loop must not fill the disk
                stderr=stderr_write,  # read (and bounded) by the grader: the student's writes never fail
                cwd=str(self.path.parent),
                env=self._environment(),
                start_new_session=True,  # its own process group: close() kills whatever it forked too
                **user,
            )
        finally:
            child.close()
            os.close(stderr_write)
        self.stderr.attach(stderr_read)
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
            self.verdict = f"{self.name} does not import: {error}"
            raise ExerciseVerdict(self.verdict) from None
        self._forbid(violations)
        if status == "error":
            self.verdict = f"{self.name} does not import: {_describe_error(payload)}"
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
            self.stderr.wait(0.5)

    def __del__(self) -> None:
        self.close()

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
            message = ("error", {"type": "UnknownError", "message": "", "line": None}, {}, message[3])
        if expect is not None and message[0] == "ok" and not isinstance(message[1], expect):
            raise StudentError(f"sent a message that cannot be read {doing}")
        violations = message[3] if isinstance(message[3], list) else []
        extra = message[2] if isinstance(message[2], dict) else {}
        return message[0], message[1], extra, [str(v) for v in violations]

    def _died(self, doing: str, start: float) -> None:
        assert self._process is not None
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self.close()
        tail = self.stderr.last_line()
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

    def _timeout_for(self, signature: tuple) -> tuple[float, str]:
        timeout, note = self.timeout, ""
        if signature not in self._seen_signatures and self.first_call_allowance:
            # After a timeout the file is known to hang somewhere: a long compile allowance for every later test
            # would turn one infinite loop into many minutes. A conv loop compiles in seconds; 15 s stays generous.
            allowance = self.first_call_allowance if not self._timeouts else min(self.first_call_allowance, 15.0)
            timeout, note = timeout + allowance, f"{allowance:g} s of it allowed for compiling; "
        return timeout, note

    def _request(self, kind: str, function: str, args: tuple, timeout: float | None = None) -> tuple:
        """Send one request; (status, payload, extra) of the answer, after the whole-exercise checks."""
        self._ensure_started()
        if function not in [name for name in self.functions or [] if isinstance(name, str)]:
            raise StudentError(f"{self.name} does not define {function}()")
        signature = (function, *(_type_key(a) for a in args))
        limit, note = self._timeout_for(signature)
        assert self._connection is not None
        start = time.monotonic()
        self._connection.send((kind, function, args))
        status, payload, extra, violations = self._receive(timeout or limit, f"in {function}()", note)
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
        if status == "error" and payload["type"] == "MemoryError":
            limit_gib = self.memory_limit / (1 << 30)
            raise StudentError(
                f"{function}() raised MemoryError"
                + (f" (line {payload['line']})" if payload.get("line") else "")
                + ": "
                f"it tried to allocate past the grader's memory limit of {limit_gib:g} GiB per process"
            )
        if status == "error":
            raise StudentError(f"{function}() raised {_describe_error(payload)}")
        return status, payload, extra

    def call(self, function: str, *args: Any, argument_names: tuple[str, ...] = ()) -> Any:
        """``function(*args)`` in the worker; the student's result, or a :class:`GradingFailure` with one line.

        A call that changes one of its array arguments fails (inputs must never be modified), naming the argument:
        the worker sends the arguments back as they were after the call, and they are compared here, with this
        process's own copy. A result that is, or shares memory with, an input fails too (the worker checks that
        before pickling, where a view is still a view).
        """
        _, payload, extra = self._request("call", function, args)

        def name(position: Any) -> str:
            if type(position) is not int:
                return "an argument"
            return argument_names[position] if position < len(argument_names) else f"argument {position + 1}"

        after = extra.get("after")
        if not (isinstance(after, list) and len(after) == len(args)):
            raise StudentError(f"{function}(): the worker's report cannot be read")
        modified = [
            i for i, (old, new) in enumerate(zip(args, after)) if type(old) is np.ndarray and not _same(old, new)
        ]
        if modified:
            raise StudentError(
                f"{function}() modified its input {', '.join(map(name, modified))} in place; inputs must stay "
                "unchanged (work on a copy, e.g. np.pad returns a new array)"
            )
        aliases = extra.get("aliases")
        if not isinstance(aliases, list):
            raise StudentError(f"{function}(): the worker's report cannot be read")
        if aliases:
            where, position = aliases[0] if isinstance(aliases[0], tuple) and len(aliases[0]) == 2 else ("result", None)
            raise StudentError(
                f"{function}() returned its input {name(position)} itself (or a view of it) as {where}: return a new "
                "array (e.g. .copy()), as the docstring says, so that changing the result cannot change the input"
            )
        return payload

    def profile(self, function: str, *args: Any, timeout: float | None = None) -> dict[str, float]:
        """Run ``function(*args)`` with the module's Numba dispatchers timed: {"total", "compiled", "compiled_calls"}
        (seconds in the call, seconds inside compiled functions, how many compiled calls)."""
        _, payload, _ = self._request("profile", function, args, timeout)
        if not (isinstance(payload, dict) and all(type(payload.get(k)) in (int, float) for k in ("total", "compiled"))):
            raise StudentError(f"{function}(): the worker's report cannot be read")
        return payload

    def numba_signatures(self) -> dict[str, int]:
        """Module-level Numba dispatchers of the student's file and how many signatures each compiled so far."""
        self._ensure_started()
        assert self._connection is not None
        self._connection.send(("numba", None, None))
        _, payload, _, violations = self._receive(self.timeout, "inspecting the module", expect=dict)
        self._forbid(violations)
        return {str(k): v for k, v in payload.items() if type(v) is int}


def _same(old: np.ndarray, new: Any) -> bool:
    """Whether an argument came back unchanged (NaN equal to NaN); compared in the grader's own process."""
    if type(new) is not np.ndarray or new.shape != old.shape or new.dtype != old.dtype:
        return False
    return bool(np.array_equal(old, new, equal_nan=old.dtype.kind in "fc"))


def _group_of(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


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
    # The grader's own settings (the hidden cases' seed) stay with the grader.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCONV_EDU_GRAD")}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.setdefault("NUMBA_NUM_THREADS", "2")
    return env
