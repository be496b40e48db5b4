"""The ``gconv-edu`` command: ``info``, ``lessons``, ``bench``, ``grade``."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .machine import thread_counts


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def info() -> int:
    """Print versions, backends (and why any is unavailable), and thread counts."""
    from .backends import REGISTRY, unavailable_reasons

    print(f"gconv-edu {_version('gconv-edu')} (Python {platform.python_version()}, {platform.platform()})")
    print(f"machine: {platform.machine()} {platform.processor() or ''}".rstrip())
    for dependency in (
        "numpy",
        "numba",
        "matplotlib",
        "threadpoolctl",
        "cupy-cuda12x",
        "torch",
        "pytest",
        "hypothesis",
    ):
        print(f"  {dependency:<14} {_version(dependency)}")
    reasons = unavailable_reasons()
    print("backends:")
    for name, backend in REGISTRY.items():
        state = "available" if name not in reasons else f"unavailable: {reasons[name]}"
        print(f"  {name:<9} [{backend.device}] {state} - {backend.description}")
    print(f"default backend: {os.environ.get('GCONV_BACKEND') or 'auto'} (GCONV_BACKEND)")
    print("threads:")
    for engine, count in thread_counts().items():
        print(f"  {engine:<10} {count}")
    return 0


# --------------------------------------------------------------------------- lessons
def lessons_dir() -> Path:
    """The ``lessons/`` folder of the checkout this package was installed from (``pip install -e .``)."""
    override = os.environ.get("GCONV_LESSONS_DIR")
    folder = Path(override) if override else Path(__file__).resolve().parents[1] / "lessons"
    if not folder.is_dir():
        raise SystemExit(f"gconv-edu lessons: no lessons folder at {folder}; run from a checkout installed with -e")
    return folder


def lesson_files(selection: list[str] | None = None) -> list[Path]:
    """Numbered lesson scripts, in order; ``selection`` filters by number prefix or name substring."""
    files = sorted(p for p in lessons_dir().glob("[0-9][0-9]_*.py"))
    if not selection:
        return files
    chosen = [p for p in files if any(p.name.startswith(s.zfill(2)) or s in p.stem for s in selection)]
    if not chosen:
        raise SystemExit(f"gconv-edu lessons: nothing matches {selection}; lessons: {[p.stem for p in files]}")
    return chosen


def run_lessons(selection: list[str] | None, fast: bool, figures: str | None) -> int:
    """Run each lesson as its own process (headless), print its output and run time; non-zero exit if any failed."""
    env = dict(os.environ, MPLBACKEND="Agg")
    if fast:
        env["GCONV_LESSONS_FAST"] = "1"
    if figures:
        env["GCONV_FIGURES_DIR"] = str(Path(figures).resolve())
    failed, timings = [], []
    for path in lesson_files(selection):
        print(f"\n{'=' * 100}\n{path.name}\n{'=' * 100}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(path)], env=env, cwd=path.parent)
        elapsed = time.perf_counter() - start
        timings.append((path.name, elapsed, result.returncode))
        if result.returncode:
            failed.append(path.name)
    print(f"\n{'lesson':<40} {'seconds':>8}  status")
    for name, elapsed, code in timings:
        print(f"{name:<40} {elapsed:8.1f}  {'ok' if code == 0 else f'FAILED (exit {code})'}")
    return 1 if failed else 0


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gconv-edu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, backends available here (and why not), thread counts")
    lessons = sub.add_parser("lessons", help="run the lesson scripts (all, or those named) and write their figures")
    lessons.add_argument("names", nargs="*", help="lesson numbers or name parts, e.g. 02 im2col")
    lessons.add_argument("--fast", action="store_true", help="smaller sizes and fewer repeats (as the tests run them)")
    lessons.add_argument("--figures", help="folder for the PNGs (default: $GCONV_FIGURES_DIR or figures/)")
    lessons.add_argument("--list", action="store_true", help="list the lessons and exit")
    sub.add_parser("bench", help="benchmark backends and peers (see gconv-edu bench --help)", add_help=False)
    sub.add_parser("grade", help="grade exercise files (see gconv-edu grade --help)", add_help=False)

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] == "grade":
        from .grading.cli import main as grade_main

        return grade_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "info":
        return info()
    if args.list:
        for path in lesson_files(args.names):
            print(path.name)
        return 0
    return run_lessons(args.names, args.fast, args.figures)


if __name__ == "__main__":
    sys.exit(main())
