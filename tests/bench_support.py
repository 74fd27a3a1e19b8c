"""Imports `bench/` for the tests that exercise it (one loader, shared)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_bench() -> None:
    """Import `bench/` as a package without putting the repository root on `sys.path`
    (where its `agents/` folder would shadow the `openai-agents` package)."""
    if "bench" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "bench", ROOT / "bench" / "__init__.py", submodule_search_locations=[str(ROOT / "bench")]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module
    spec.loader.exec_module(module)
