"""Layering, checked by reading every module's imports with `ast`.

A module may import its own layer or the layers above it in the README's Layout list (a
lower number here), never a higher one. Imports under `if TYPE_CHECKING:` are
ignored. Every module must be placed in `LAYERS`: a new one fails this test until
someone decides where it belongs.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "tiered"
READY_MADE = ("agents", "tools")
"""Top-level folders that import as `tiered.agents` / `tiered.tools` (through symlinks)."""

LAYERS: dict[str, float] = {
    # 1. errors, logging
    "tiered._errors": 1,
    "tiered._logging": 1,
    "tiered._sync": 1,
    "tiered._build": 1,
    # 2. provider-neutral data
    "tiered._messages": 2,
    "tiered._names": 2,
    "tiered._catalog": 2,
    "tiered._usage": 2,
    "tiered._confidence": 2,
    "tiered._charges": 2,
    "tiered._ledger": 2,
    "tiered._json": 2,
    "tiered._metering": 2,
    "tiered._ratelimit": 2,
    # 3. the seam to providers (the package and everything under it)
    "tiered.models": 3,
    # 4. tools
    "tiered._tool_def": 4,
    "tiered._tool": 4,
    "tiered._schema": 4,
    "tiered._strict": 4,
    "tiered._docstring": 4,
    "tiered._context": 4,
    "tiered._user_file": 4,
    "tiered._effects": 4,
    "tiered._schema_tool": 4,
    # 5. agent
    "tiered._agent": 5,
    "tiered._agent_loop": 5,
    "tiered._agent_output": 5,
    "tiered._agent_calls": 5,
    "tiered._agent_support": 5,
    # 6. plan, planner, routing, escalation
    "tiered._plan": 6,
    "tiered._plan_prompt": 6,
    "tiered._planner": 6,
    "tiered._routing": 6,
    "tiered._escalation": 6,
    "tiered._verify": 6,
    "tiered._answer_check": 6,
    "tiered._limits": 6,
    "tiered._estimate": 6,
    "tiered._learning": 6,
    "tiered._calibration": 6,
    "tiered._cascade": 6,
    "tiered._calibrated": 6,
    "tiered._gain_worth": 6,
    "tiered._gain": 6,
    # 7. orchestrator
    "tiered._orchestrator": 7,
    "tiered._run": 7,
    "tiered._run_state": 7,
    "tiered._scheduler": 7,
    "tiered._subtask": 7,
    "tiered._attempt": 7,
    "tiered._steps": 7,
    "tiered._decompose": 7,
    "tiered._recorder": 7,
    "tiered._stream": 7,
    "tiered._events": 7,
    "tiered._result": 7,
    "tiered._journal": 7,
    "tiered._runlock": 7,
    "tiered._workflow": 7,
    "tiered._eval": 7,
    "tiered._eval_report": 7,
    # ready-made pieces: use the public API, never the CLI
    "tiered.agents": 7.5,
    "tiered.tools": 7.5,
    # 8. the command line and the public surface
    "tiered._cli": 8,
    "tiered._cli_run": 8,
    "tiered._cli_runs": 8,
    "tiered._cli_eval": 8,
    "tiered._progress": 8,
    "tiered._display": 8,
    "tiered.__main__": 8,
    "tiered": 8,
}
"""Module (or package: covers everything under it) -> layer; lower may not import higher."""

PUBLIC_API_USERS = ("tiered.agents", "tiered.tools")
"""May import `tiered` itself (the public API) although it sits on layer 8."""

CONFINED: dict[str, tuple[str, ...]] = {
    "openai": ("tiered.models",),
    "httpx2": ("tiered.models", "tiered.tools._http"),
}
"""Third-party packages and the only modules that may import them. The OpenAI SDK stays
behind the models seam; httpx2 also serves the allow-listed HTTP fetch tool."""

BANNED = {
    "asyncio": "use anyio: the framework runs on any anyio backend",
    "agents": "openai-agents owns the top-level name `agents`: import `tiered.agents`",
    "tools": "import `tiered.tools`, never the top-level folder",
}


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True, slots=True)
class Import:
    target: str
    line: int


def iter_modules() -> Iterator[Module]:
    """Every module of the package and of the ready-made folders, by import name."""
    yield from _walk(PACKAGE, "tiered", skip=READY_MADE)
    for folder in READY_MADE:
        yield from _walk(ROOT / folder, f"tiered.{folder}", skip=())


def _walk(root: Path, prefix: str, *, skip: tuple[str, ...]) -> Iterator[Module]:
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinks
        here = Path(dirpath)
        rel = here.relative_to(root).parts
        dirnames[:] = sorted(
            d for d in dirnames if d != "__pycache__" and not (not rel and d in skip)
        )
        for filename in sorted(filenames):
            if not filename.endswith(".py"):
                continue
            stem = filename[:-3]
            parts = [prefix, *rel] + ([] if stem == "__init__" else [stem])
            yield Module(".".join(parts), here / filename, stem == "__init__")


MODULES = sorted(iter_modules(), key=lambda m: m.name)
KNOWN_NAMES = {m.name for m in MODULES}


def layer_of(name: str) -> float | None:
    """The layer of module `name`: its own entry, else its closest package's."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        layer = LAYERS.get(".".join(parts[:i]))
        if layer is not None and (i == len(parts) or ".".join(parts[:i]) != "tiered"):
            return layer
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: Module) -> list[Import]:
    """Absolute names of what `module` imports at run time (TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                is_module = submodule in KNOWN_NAMES or (base.startswith("tiered") and private)
                found.append(Import(submodule if is_module else base, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_modules_found() -> None:
    names = {m.name for m in MODULES}
    assert {"tiered", "tiered._errors", "tiered.models", "tiered.agents", "tiered.tools"} <= names


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_every_module_has_a_layer(module: Module) -> None:
    assert layer_of(module.name) is not None, (
        f"{module.name} ({module.path.relative_to(ROOT)}) has no layer: add it to LAYERS in "
        "tests/test_architecture.py (the layers are listed in the README, Layout)"
    )


def layering_problems(module: Module) -> list[str]:
    """Each import of `module` that reaches a higher layer (or one with no layer)."""
    own = layer_of(module.name)
    assert own is not None
    problems = []
    for imp in imports_of(module):
        if imp.target != "tiered" and not imp.target.startswith("tiered."):
            continue
        if imp.target == "tiered" and module.name.startswith(PUBLIC_API_USERS):
            continue
        target = layer_of(imp.target)
        if target is None:
            problems.append(f"line {imp.line}: imports {imp.target}, which has no layer")
        elif target > own:
            problems.append(
                f"line {imp.line}: layer {own:g} imports {imp.target} (layer {target:g})"
            )
    return problems


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_no_upward_imports(module: Module) -> None:
    if layer_of(module.name) is None:
        pytest.skip("no layer yet; see test_every_module_has_a_layer")
    problems = layering_problems(module)
    assert not problems, f"{module.name} ({module.path.relative_to(ROOT)}):\n" + "\n".join(problems)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_confined_and_banned_imports(module: Module) -> None:
    problems = []
    for imp in imports_of(module):
        top = imp.target.split(".")[0]
        if top in BANNED:
            problems.append(f"line {imp.line}: imports {imp.target}: {BANNED[top]}")
        allowed = CONFINED.get(top)
        if allowed is not None and not any(
            module.name == a or module.name.startswith(a + ".") for a in allowed
        ):
            problems.append(
                f"line {imp.line}: imports {imp.target}, allowed only in {', '.join(allowed)}"
            )
    assert not problems, f"{module.name} ({module.path.relative_to(ROOT)}):\n" + "\n".join(problems)


# --- the checker checks itself ----------------------------------------------------------


def test_layer_lookup() -> None:
    assert layer_of("tiered.models._openai") == 3
    assert layer_of("tiered.tools._http") == 7.5
    assert layer_of("tiered") == 8
    assert layer_of("tiered._brand_new") is None
    assert layer_of("tiered.models.sub.deep") == 3


def test_import_resolution(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import tiered._errors\n"
        "from tiered import Agent, _cli\n"
        "from .. import _errors\n"
        "from .._usage import Usage\n"
        "from . import _base\n"
        "from ._scripted import ScriptedModel\n"
        "if TYPE_CHECKING:\n"
        "    from tiered._orchestrator import Orchestrator\n"
        "else:\n"
        "    import asyncio\n"
        "def f() -> None:\n"
        "    from tiered.models import Model\n"
    )
    targets = [i.target for i in imports_of(Module("tiered.models._x", source, False))]
    assert targets == [
        "typing",
        "tiered._errors",
        "tiered",
        "tiered._cli",
        "tiered._errors",
        "tiered._usage",
        "tiered.models._base",
        "tiered.models._scripted",
        "asyncio",
        "tiered.models",
    ]


def test_upward_imports_are_caught(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from tiered._catalog import Tier\n"  # up the list: fine
        "from tiered._tool import Tool\n"  # same layer: fine
        "from tiered._agent import Agent\n"  # lower layer
        "import tiered\n"  # the public package is layer 8
        "from tiered import _new\n"  # no layer
    )
    assert layering_problems(Module("tiered._context", source, False)) == [
        "line 3: layer 4 imports tiered._agent (layer 5)",
        "line 4: layer 4 imports tiered (layer 8)",
        "line 5: imports tiered._new, which has no layer",
    ]
    source.write_text("from tiered import Agent, _cli\n")
    assert layering_problems(Module("tiered.tools._x", source, False)) == [
        "line 1: layer 7.5 imports tiered._cli (layer 8)"
    ]
