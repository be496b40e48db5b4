"""The command line and the README's own example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import gconv_edu as gc
from gconv_edu.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_info_lists_backends_and_threads(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in gc.available_backends():
        assert re.search(rf"^\s+{re.escape(name)}\s+\[\w+\] available", out, re.MULTILINE), out
    assert "threads:" in out and "numpy" in out


def test_info_says_why_a_backend_is_unavailable(capsys, monkeypatch):
    from gconv_edu.backends import REGISTRY, Backend

    monkeypatch.setitem(REGISTRY, "ghost", Backend("ghost", ".ghost_backend", "cpu"))
    main(["info"])
    assert re.search(r"ghost\s+\[cpu\] unavailable: import failed", capsys.readouterr().out)


def test_lessons_list(capsys):
    assert main(["lessons", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names == sorted(names) and all(re.match(r"\d\d_\w+\.py$", n) for n in names)


def test_readme_example_runs():
    """The first python block of the README is executable as written."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "gradcheck ok" in result.stdout
