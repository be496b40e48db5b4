"""The ``gconv-edu`` command: ``info``, ``lessons``, ``course``, ``bench``, ``grade``.

Exit codes: 0 done; 1 the work ran and failed (a lesson failed, a selection matched nothing); 2 a usage error found
before any work (a bad option, an output folder that cannot be written); 141 the output pipe was closed (``| head``),
which ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import __version__, course
from .arrays import cupy_distribution
from .machine import thread_counts

__all__ = ["lesson_files", "lessons_dir", "main", "select_lessons", "thread_counts", "write_notebooks"]

BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a command that wrote into a closed pipe


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# --------------------------------------------------------------------------- info
def _environment_lines() -> list[str]:
    """The process default backend (GCONV_BACKEND), and every package setting whose value is invalid, with why."""
    from .backends import environment_errors

    errors = environment_errors()
    value = os.environ.get("GCONV_BACKEND")
    if "GCONV_BACKEND" in errors:
        lines = [f"default backend: INVALID, calls without backend= will raise: {errors.pop('GCONV_BACKEND')}"]
    elif value:
        lines = [f"default backend: {value} (GCONV_BACKEND)"]
    else:
        lines = ["default backend: auto (GCONV_BACKEND unset)"]
    return lines + [f"INVALID {variable}: {why}" for variable, why in errors.items()]


def info() -> int:
    """Print versions, backends (and why any is unavailable), the default backend, and thread counts."""
    from .backends import REGISTRY, unavailable_reasons

    print(f"gconv-edu {__version__} (Python {platform.python_version()}, {platform.platform()})")
    print(f"machine: {platform.machine()} {platform.processor() or ''}".rstrip())
    for dependency in ("numpy", "numba", "matplotlib", "threadpoolctl", "torch", "pytest", "hypothesis", "jupytext"):
        print(f"  {dependency:<14} {_version(dependency)}")
    cupy = cupy_distribution()
    print(f"  {'cupy':<14} {_version(cupy) + f' ({cupy})' if cupy else 'not installed'}")
    reasons = unavailable_reasons()
    print("backends:")
    for name, backend in REGISTRY.items():
        state = "available" if name not in reasons else f"unavailable: {reasons[name]}"
        print(f"  {name:<9} [{backend.device}] {state} - {backend.description}")
    for line in _environment_lines():
        print(line)
    print("threads:")
    for engine, count in thread_counts().items():
        print(f"  {engine:<10} {count}")
    return 0


# --------------------------------------------------------------------------- lessons
class UsageError(Exception):
    """A problem with the command line found before any work: printed as one line, exit 2."""


def lessons_dir() -> Path:
    """The lessons: ``$GCONV_LESSONS_DIR`` if set, else :func:`gconv_edu.course.lessons_dir` (the checkout's
    ``lessons/`` or the installed copy ``gconv_edu/_lessons``)."""
    override = os.environ.get("GCONV_LESSONS_DIR")
    folder = Path(override) if override else course.lessons_dir()
    if not folder.is_dir():
        hint = "GCONV_LESSONS_DIR is set" if override else "this install ships no lessons: reinstall from a wheel"
        raise SystemExit(f"gconv-edu: no lessons folder at {folder} ({hint})")
    return folder


def lesson_files() -> list[Path]:
    """Every numbered lesson script ``NN_name.py``, in order."""
    return sorted(lessons_dir().glob("[0-9][0-9]_*.py"))


def _matches(selector: str, path: Path) -> bool:
    """A number selects that lesson only ("1", "01"); a name selects lessons with it as a whole word (or words)."""
    token = selector.lower().removesuffix(".py")
    if token.isdigit():
        return int(token) == int(path.name[:2])
    return f"_{token}_" in f"_{path.stem.lower()}_"


def select_lessons(selectors: list[str] | None, files: list[Path]) -> list[Path]:
    """The lessons named by ``selectors`` (all when empty), in course order.

    Each selector must match at least one lesson: ``"2"`` or ``"02"`` is lesson 02 only, ``"im2col"`` or
    ``"groups_specialise"`` must be whole words of the file name split on ``_`` (``"col"`` matches nothing).
    SystemExit (exit 1) listing the lessons when one matches nothing.
    """
    if not selectors:
        return files
    unmatched = [s for s in selectors if not any(_matches(s, p) for p in files)]
    if unmatched:
        listing = "\n".join(f"  {p.stem}" for p in files)
        raise SystemExit(
            f"gconv-edu lessons: no lesson matches {', '.join(map(repr, unmatched))} (a number, or whole words of "
            f"the name)\nlessons:\n{listing}"
        )
    return [p for p in files if any(_matches(s, p) for s in selectors)]


def writable_folder(option: str, folder: str | Path) -> Path:
    """``folder`` resolved, created if missing, and proven writable by writing a file in it; else UsageError naming
    ``option``. Checked before any work, so that nothing computed is lost to a bad path."""
    path = Path(folder).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".gconv-write-check-"):
            pass
    except OSError as error:
        raise UsageError(f"{option} {folder}: cannot write there ({type(error).__name__}: {error.strerror})") from None
    return path


def write_notebooks(files: list[Path], folder: Path) -> list[Path]:
    """Write each lesson script (jupytext percent format) as ``folder/<name>.ipynb``; the paths written.

    The notebooks have no outputs yet and name the ``python3`` kernel. Needs the ``notebook`` extra (jupytext).
    """
    try:
        import jupytext
    except ImportError:
        raise UsageError(
            "--notebooks needs jupytext, which the notebook extra installs: pip install 'gconv-edu[notebook]' "
            "(from a checkout: pip install -e '.[notebook]')"
        ) from None
    written = []
    for path in files:
        notebook = jupytext.read(path, fmt="py:percent")
        notebook.metadata.pop("jupytext", None)  # a plain notebook, not paired with a script the student lacks
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        target = folder / f"{path.stem}.ipynb"
        jupytext.write(notebook, target, fmt="ipynb")
        written.append(target)
    return written


# Runs a lesson as __main__ in the child; a closed output pipe (| head) ends it quietly instead of a traceback.
_LESSON_RUNNER = """
import os, runpy, sys
path = sys.argv[1]
sys.argv = [path]
try:
    runpy.run_path(path, run_name="__main__")
    sys.stdout.flush()
except BrokenPipeError:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)
"""


def run_lessons(files: list[Path], fast: bool, figures: Path) -> int:
    """Run each lesson in its own process (headless, from the current folder); figures go to ``figures``.

    The environment is passed through (``GCONV_BACKEND``, and lesson 10's ``GCONV_SEEDS`` / ``GCONV_DATA_SEED``);
    ``fast`` sets ``GCONV_LESSONS_FAST=1``. Prints each lesson's output and a table of run times; 1 if any failed.
    """
    env = dict(os.environ, MPLBACKEND="Agg", GCONV_FIGURES_DIR=str(figures))
    if fast:
        env["GCONV_LESSONS_FAST"] = "1"
    timings = []
    for path in files:
        print(f"\n{'=' * 100}\n{path.name}\n{'=' * 100}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", _LESSON_RUNNER, str(path)], env=env)
        if result.returncode == BROKEN_PIPE_EXIT:
            raise BrokenPipeError
        timings.append((path.name, time.perf_counter() - start, result.returncode))
    print(f"\n{'lesson':<40} {'seconds':>8}  status")
    for name, elapsed, code in timings:
        print(f"{name:<40} {elapsed:8.1f}  {'ok' if code == 0 else f'FAILED (exit {code})'}")
    print(f"figures: {figures}")
    return 1 if any(code for _, _, code in timings) else 0


def lessons_command(args: argparse.Namespace) -> int:
    """``gconv-edu lessons``: list, write as notebooks, or run the selected lessons."""
    files = select_lessons(args.names, lesson_files())
    if args.list:
        for path in files:
            print(path.name)
        return 0
    if args.notebooks is not None:
        folder = writable_folder("--notebooks", args.notebooks)
        for path in write_notebooks(files, folder):
            print(f"[notebook] {path}")
        return 0
    figures = writable_folder("--figures", args.figures or course.default_figures_dir())
    return run_lessons(files, args.fast, figures)


# --------------------------------------------------------------------------- course
def _course_files(root: Path) -> list[Path]:
    """The numbered lessons and everything under ``exercises/`` (the stubs), relative to ``root``."""
    files = [p.relative_to(root) for p in sorted(root.glob("[0-9][0-9]_*.py"))]
    for path in sorted((root / "exercises").rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
            files.append(relative)
    return files


def course_command(args: argparse.Namespace) -> int:
    """``gconv-edu course DIR``: copy the lessons and the exercise stubs into DIR for a student."""
    target = writable_folder("DIR", args.dir)
    source = lessons_dir()
    files = _course_files(source)
    existing = [str(f) for f in files if (target / f).exists()]
    if existing and not args.force:
        raise UsageError(f"DIR {args.dir}: would overwrite {', '.join(existing)} (--force to replace them)")
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target / relative)
    lessons = [f for f in files if f.parent == Path(".")]
    notebooks = write_notebooks([source / f for f in lessons], target) if args.notebooks else []
    print(f"copied {len(lessons)} lessons and {len(files) - len(lessons)} exercise files into {target}")
    if notebooks:
        print(f"wrote {len(notebooks)} notebooks beside them")
    stubs = sorted(f.as_posix() for f in files if f.name.startswith("ex") and f.suffix == ".py")
    print(f"next: cd {target} && python {lessons[0] if lessons else '01_*.py'}   (figures go to ./figures)")
    if stubs:
        print(f"      edit {stubs[0]}, then: gconv-edu grade {stubs[0]}")
    return 0


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    """The parser of ``gconv-edu`` (``bench`` and ``grade`` parse their own options)."""
    parser = argparse.ArgumentParser(prog="gconv-edu", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gconv-edu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, backends available here (and why not), thread counts")
    lessons = sub.add_parser(
        "lessons",
        help="run the lesson scripts (all, or those named) and write their figures",
        description="Run the lessons, each in its own process, from the current folder. A number selects that "
        "lesson only (1 or 01); a name selects lessons with it as a whole word of the file name (im2col, groups). "
        "The environment passes through: GCONV_BACKEND, and lesson 10's GCONV_SEEDS and GCONV_DATA_SEED.",
    )
    lessons.add_argument("names", nargs="*", help="lesson numbers or whole words of their names, e.g. 2 im2col")
    lessons.add_argument("--fast", action="store_true", help="smaller sizes and fewer repeats (as the tests run them)")
    lessons.add_argument(
        "--figures",
        metavar="DIR",
        help="folder for the PNGs (default: $GCONV_FIGURES_DIR, else figures/ of a checkout, else ./figures)",
    )
    lessons.add_argument("--list", action="store_true", help="list the (selected) lessons and exit")
    lessons.add_argument("--notebooks", metavar="DIR", help="write the (selected) lessons as .ipynb into DIR and exit")
    course_parser = sub.add_parser("course", help="copy the lessons and the exercise stubs into a folder")
    course_parser.add_argument("dir", metavar="DIR", help="where to put them (created if missing)")
    course_parser.add_argument("--notebooks", action="store_true", help="also write each lesson as a .ipynb")
    course_parser.add_argument("--force", action="store_true", help="replace files of the same name in DIR")
    sub.add_parser("bench", help="benchmark backends and peers (see gconv-edu bench --help)", add_help=False)
    sub.add_parser("grade", help="grade exercise files (see gconv-edu grade --help)", add_help=False)
    sub.add_parser("gradescope", help="build a Gradescope autograder zip (gradescope build ZIP)", add_help=False)
    return parser


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] == "grade":
        from .grading.cli import main as grade_main

        return grade_main(argv[1:])
    if argv and argv[0] == "gradescope":
        from .grading.gradescope import main as gradescope_main

        return gradescope_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "info": lambda _: info(),
        "lessons": lessons_command,
        "course": course_command,
    }
    try:
        return commands[args.command](args)
    except UsageError as error:
        parser.exit(2, f"gconv-edu {args.command}: error: {error}\n")


def main(argv: list[str] | None = None) -> int:
    """``gconv-edu``'s entry point; returns the exit code. Output into a closed pipe ends quietly (exit 141)."""
    try:
        code = _dispatch(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so that the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
