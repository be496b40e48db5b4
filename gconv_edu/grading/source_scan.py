"""The source scan: imports of forbidden packages in the code that runs when a student's file is imported (the
worker blocks the same imports at run time, wherever they run)."""

from __future__ import annotations

import ast
from typing import Any

# Packages that compute the exercise for the student. gconv_edu is the reference itself; the others ship a conv2d.
FORBIDDEN_MODULES = ("gconv_edu", "torch", "tensorflow", "jax")


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (either order): its body never runs when the grader imports the file."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    values = [s.value for s in sides if isinstance(s, ast.Constant)]
    return isinstance(node.test.ops[0], ast.Eq) and names == ["__name__"] and values == ["__main__"]


def _walk_module_level(tree: ast.AST) -> Any:
    """ast.walk over the code that runs when the file is imported: without the bodies of functions (their imports
    are caught at run time, if the grader's calls run them) and of ``if __name__ == "__main__":`` (its ``else`` is
    still scanned). Decorators and default values run at import, so they are scanned."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _is_main_guard(node):
            todo += node.orelse
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo += [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)]
            continue
        if isinstance(node, ast.Lambda):
            continue
        todo += list(ast.iter_child_nodes(node))[::-1]


def forbidden_imports(tree: ast.AST, forbidden: tuple[str, ...] = FORBIDDEN_MODULES) -> list[str]:
    """Module-level imports of forbidden packages in a parsed file, as 'import of NAME at line N' (also
    ``__import__``/``import_module`` calls).

    Code that runs at import is scanned; a function body is not (the worker's import blocker catches its imports if
    a grading call runs them), so a self-test helper called only under ``if __name__ == "__main__":`` may import
    anything: the grader never runs it.
    """
    found = []
    for node in _walk_module_level(tree):
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
