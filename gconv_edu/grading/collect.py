"""Which files of a submission are graded: forgiving names, any depth, notebooks turned into scripts.

A folder is one submission. It is searched at any depth (a zip whose files sit in a subfolder is fine), skipping
hidden folders, ``__pycache__`` and ``__MACOSX``. Each exercise gets one file: names are matched forgivingly (see
:func:`gconv_edu.grading.exercises.exercise_for_path`); the stub's own name wins over other names (a ``.py`` over
an ``.ipynb``); a single candidate is taken; several others are not graded ("keep one"). A missing exercise is
reported with where the grader looked and what it found there.

A notebook (``.ipynb``, the lesson's or the stub's) is graded through its code cells, written as a script beside
nothing else in a folder of its own; IPython magics and shell lines (``%...``, ``!...``) become comments.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .exercises import EXERCISES, SUFFIXES, canonical_name, exercise_for_path, is_exercise_name

SKIPPED_DIRS = {"__pycache__", "__MACOSX", "node_modules"}


@dataclass(frozen=True)
class Submitted:
    """One file to grade: ``path`` (a script; for a notebook, the script made from it) and ``shown`` (the name the
    student gave it, used in feedback and reports)."""

    path: Path
    shown: Path

    @property
    def key(self) -> str:
        return exercise_for_path(self.shown).key


def candidates(folder: Path) -> list[Path]:
    """Every file under ``folder`` (any depth) whose name looks like an exercise, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            path = Path(root, name)
            if path.suffix.lower() in SUFFIXES and is_exercise_name(path):
                found.append(path)
    return found


def _listing(folder: Path, limit: int = 8) -> str:
    """What a folder holds (any depth), for a "found ..." message: a few relative paths."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        files += [str(Path(root, n).relative_to(folder)) for n in sorted(names) if not n.startswith(".")]
    shown = ", ".join(files[:limit]) + (f" and {len(files) - limit} more" if len(files) > limit else "")
    return shown or "no files"


def folder_files(folder: Path, exercises: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """One file per exercise in a submission folder (any depth), and why an exercise is not graded.

    ``exercises``: the keys expected (default: all); a missing one is reported with where the grader looked.
    """
    wanted = exercises or list(EXERCISES)
    by_key: dict[str, list[Path]] = {}
    for path in candidates(folder):
        by_key.setdefault(exercise_for_path(path).key, []).append(path)
    files, errors = [], []
    for key in wanted:
        paths = by_key.get(key, [])
        stub = EXERCISES[key].stub
        own = [p for p in paths if canonical_name(p) == stub]
        own = own or [p for p in paths if canonical_name(p) == Path(stub).with_suffix(".ipynb").name]
        if len(own) == 1 or (not own and len(paths) == 1):
            files.append((own or paths)[0])
        elif paths:
            names = ", ".join(str(p.relative_to(folder)) for p in paths)
            errors.append(f"{folder}: several files for {key} ({names}): keep one (or name it {stub})")
        else:
            errors.append(
                f"{folder}: no file for {key} (expected {stub}, or any exN_*.py / .ipynb name): looked in {folder} "
                f"and its subfolders; found {_listing(folder)}"
            )
    return files, errors


def notebook_source(path: Path) -> str:
    """The code cells of a notebook as one script (magics and shell lines commented out); ValueError if unreadable."""
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cells = [c for c in notebook["cells"] if c.get("cell_type") == "code"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path.name} is not a readable notebook ({type(error).__name__})") from None
    chunks = []
    for cell in cells:
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        lines = [f"# {line}" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines()]
        chunks.append("\n".join(lines))
    return "\n\n".join(chunks) + "\n"


def as_script(path: Path, workspace: Path) -> Submitted:
    """A file ready to grade: a ``.py`` as it is; a notebook written as a script into a folder of its own."""
    if path.suffix.lower() != ".ipynb":
        return Submitted(path, path)
    folder = Path(tempfile.mkdtemp(prefix="notebook-", dir=workspace))
    script = folder / (EXERCISES[exercise_for_path(path).key].stub)
    script.write_text(notebook_source(path), encoding="utf-8")
    os.chmod(folder, 0o755)
    os.chmod(script, 0o644)
    return Submitted(script, path)
