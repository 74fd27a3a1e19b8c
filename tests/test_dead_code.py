"""No helper is left unused: every function and class a private module defines, and every
private method, is used somewhere in the shipped code (one only tests call is dead weight).
Public methods are API, so they are not checked."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("src/tiered", "agents", "tools", "bench", "examples")
"""Where a use counts: the package, the ready-made pieces, benchmarks and examples."""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def names_used(tree: ast.AST) -> Counter[str]:
    """Every name a module reads, imports, or spells as a string (`getattr`, `__all__`)."""
    used: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used[node.id] += 1
        elif isinstance(node, ast.Attribute):
            used[node.attr] += 1
        elif isinstance(node, ast.alias):
            used[(node.asname or node.name).rpartition(".")[2]] += 1
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            used[node.value] += 1
    return used


def definitions(tree: ast.Module, *, private_module: bool) -> list[str]:
    """Module-level functions and classes (all of them in a private module, else the
    private ones), and private methods, as "name" / "Class.method"."""
    found: list[str] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if private_module or _private(node.name):
            found.append(node.name)
        if isinstance(node, ast.ClassDef):
            found.extend(
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _private(item.name)
            )
    return found


def unused(used: Counter[str], defined: list[str]) -> list[str]:
    """The definitions whose name nothing uses."""
    return [d for d in defined if not used[d.rpartition(".")[2]]]


def test_no_helper_is_unused() -> None:
    used: Counter[str] = Counter()
    defined: dict[str, list[str]] = {}
    for folder in SHIPPED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            used += names_used(tree)
            if folder == "src/tiered":
                rel = path.relative_to(ROOT)
                private_module = any(_private(part) for part in rel.parts)
                defined[str(rel)] = definitions(tree, private_module=private_module)
    dead = [f"{path}: {name}" for path, names in defined.items() for name in unused(used, names)]
    assert not dead, "defined but never used (remove them):\n" + "\n".join(dead)


def test_the_check_sees_an_unused_helper() -> None:
    source = "def used(): ...\ndef dead(): ...\nclass C:\n    def _gone(self): ...\nused()\n"
    tree = ast.parse(source)
    found = unused(names_used(tree), definitions(tree, private_module=True))
    assert found == ["dead", "C", "C._gone"]
    assert unused(names_used(tree), definitions(tree, private_module=False)) == ["C._gone"]
