"""What crosses from a student's worker to the grader: its stderr (bounded, read through a pipe) and its results
(unpickled with an allow-list, so a result's ``__reduce__`` cannot run code in the grader)."""

from __future__ import annotations

import io
import pickle
import threading
from typing import Any

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
# Bytes of the worker's stderr the grader keeps (the rest is read and dropped, so the student's writes never fail);
# the last few KiB are kept too: they say why it crashed.
STDERR_KEPT = 64 << 10
STDERR_TAIL = 4 << 10
# Bytes a worker may write into any one file (a loop writing a file must not fill the disk); stderr is a pipe.
FILE_SIZE_LIMIT = 64 << 20


class StderrBuffer:
    """Reads a worker's stderr pipe in a thread until it closes: keeps the first :data:`STDERR_KEPT` bytes and the
    last :data:`STDERR_TAIL`, counts the rest."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = b""
        self.total = 0
        self._threads: list[threading.Thread] = []

    def attach(self, read_fd: int) -> None:
        thread = threading.Thread(target=self._drain, args=(read_fd,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _drain(self, read_fd: int) -> None:
        with open(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                self.total += len(chunk)
                room = STDERR_KEPT - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                self.tail = (self.tail + chunk)[-STDERR_TAIL:]

    def wait(self, timeout: float = 2.0) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def text(self) -> str:
        """The kept stderr, with a note when it was truncated."""
        kept = self.head.decode(errors="replace")
        if self.total > len(self.head):
            kept += f"\n[stderr truncated by the grader: kept the first {STDERR_KEPT >> 10} KiB of {self.total} bytes]"
        return kept

    def last_line(self) -> str:
        lines = [line for line in self.tail.decode(errors="replace").splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""


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
