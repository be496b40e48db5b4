"""Build hook: the wheel ships a copy of the top-level ``lessons/`` as package data ``gconv_edu/_lessons``.

``lessons/`` stays the one hand-kept source; the copy is made at build time (``gconv_edu/_lessons/`` is gitignored) so
that ``gconv-edu lessons`` and ``gconv-edu course DIR`` work from an installed wheel. Everything else about the
package is declared in ``pyproject.toml``. Reference solutions never live under ``lessons/`` (they are the
instructor's); the copy refuses any file that looks like one, so a misplaced solution fails the build instead of
shipping to students.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
LESSONS = HERE / "lessons"
PACKAGE_COPY = ("gconv_edu", "_lessons")


def lesson_files(root: Path) -> list[Path]:
    """The files of ``root`` (a ``lessons/`` folder) that the wheel ships, relative to ``root``, sorted."""
    skipped_dirs = {"__pycache__", ".ipynb_checkpoints", "figures"}
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_dir() or skipped_dirs & set(relative.parts) or path.suffix in (".pyc", ".ipynb"):
            continue
        if "solution" in path.name.lower() or "solutions" in relative.parts:
            raise SystemExit(f"setup.py: {path} looks like a reference solution; those belong in instructor/")
        files.append(relative)
    return files


class build_py_with_lessons(build_py):
    """``build_py`` that also copies ``lessons/`` into the built package as ``gconv_edu/_lessons``."""

    def run(self) -> None:
        super().run()
        # An editable install reads lessons/ of the checkout itself (gconv_edu.course.lessons_dir()).
        if getattr(self, "editable_mode", False):
            return
        if not LESSONS.is_dir():
            raise SystemExit(f"setup.py: no lessons folder at {LESSONS}; the wheel must ship the lessons")
        target = Path(self.build_lib, *PACKAGE_COPY)
        if target.exists():
            shutil.rmtree(target)
        for relative in lesson_files(LESSONS):
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(LESSONS / relative, destination)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False) or not LESSONS.is_dir():
            return outputs
        target = Path(self.build_lib, *PACKAGE_COPY)
        return outputs + [str(target / relative) for relative in lesson_files(LESSONS)]


setup(cmdclass={"build_py": build_py_with_lessons})
