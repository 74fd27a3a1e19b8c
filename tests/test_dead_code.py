"""No helper is left unused: every function and class a private module defines, every
private constant and every private method is used somewhere in the shipped code (one
that only tests call is dead weight). Public methods are API, so they are not checked."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("src/tiered", "agents", "tools", "bench", "examples")
"""Where a use counts: the package, the ready-made pieces, benchmarks and examples."""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def names_read(tree: ast.AST) -> Counter[str]:
    """The bare names a module reads (not the ones it assigns)."""
    return Counter(
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store)
    )


def names_reached(tree: ast.AST) -> Counter[str]:
    """The names a module reaches in other modules or objects: imported, read as an
    attribute, or spelled as a string (`getattr(obj, "_name")`, `__all__`)."""
    reached: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            reached[node.attr] += 1
        elif isinstance(node, ast.alias):
            reached[(node.asname or node.name).rpartition(".")[2]] += 1
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            reached[node.value] += 1
    return reached


def definitions(tree: ast.Module, *, private_module: bool) -> list[str]:
    """Module-level functions and classes (all of them in a private module, else the
    private ones), private constants, and private methods, as "name" / "Class.method"."""
    found: list[str] = []
    for node in tree.body:
        target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and _private(target.id):
            found.append(target.id)
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


def unused(
    defined: list[str], own: Counter[str], read: Counter[str], reached: Counter[str]
) -> list[str]:
    """The definitions nothing uses. A module-level `_name` is used when its own module
    reads it (`own`) or another reaches it; any other name when any module reads it
    (`read`) or reaches it."""
    dead = []
    for name in defined:
        short = name.rpartition(".")[2]
        local = "." not in name and _private(name)
        if not ((own if local else read)[short] or reached[short]):
            dead.append(name)
    return dead


def test_no_helper_is_unused() -> None:
    read: Counter[str] = Counter()
    reached: Counter[str] = Counter()
    modules: dict[str, tuple[list[str], Counter[str]]] = {}
    for folder in SHIPPED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            own = names_read(tree)
            read += own
            reached += names_reached(tree)
            if folder == "src/tiered":
                rel = path.relative_to(ROOT)
                private_module = any(_private(part) for part in rel.parts)
                modules[str(rel)] = (definitions(tree, private_module=private_module), own)
    dead = [
        f"{path}: {name}"
        for path, (defined, own) in modules.items()
        for name in unused(defined, own, read, reached)
    ]
    assert not dead, "defined but never used (remove them):\n" + "\n".join(dead)


def test_the_check_sees_an_unused_helper() -> None:
    module = ast.parse(
        "_LIMIT = 3\n_UNUSED: int = 4\ndef used(): return _LIMIT\ndef dead(): ...\n"
        "class C:\n    def _gone(self): ...\nused()\n"
    )
    other = ast.parse("_UNUSED = 5\nprint(_UNUSED)\n")  # the same name elsewhere is not a use
    own, reached = names_read(module), names_reached(module)
    read = own + names_read(other)
    assert unused(definitions(module, private_module=True), own, read, reached) == [
        "_UNUSED",
        "dead",
        "C",
        "C._gone",
    ]
    assert unused(definitions(module, private_module=False), own, read, reached) == [
        "_UNUSED",
        "C._gone",
    ]
