"""The BFCL wheel: fetched once with `pip download --no-deps`, read as a zip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ("BFCL_VERSION", "CATEGORIES", "BfclCase", "load_category", "wheel_path")

BFCL_VERSION = "2026.3.23"
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
"""The non-live single-turn Python categories the AST checker scores."""


def _cache_dir() -> Path:
    return Path(os.environ.get("BFCL_CACHE", Path.home() / ".cache" / "tiered-bench" / "bfcl"))


def wheel_path(*, download: bool = True) -> Path:
    """The cached wheel, downloaded (no dependencies) on first use."""
    cache = _cache_dir()
    found = sorted(cache.glob(f"bfcl_eval-{BFCL_VERSION}-*.whl"))
    if found:
        return found[0]
    if not download:
        raise FileNotFoundError(f"no bfcl-eval {BFCL_VERSION} wheel in {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
         f"bfcl-eval=={BFCL_VERSION}", "-d", str(cache)],
        check=True,
    )  # fmt: skip
    return wheel_path(download=False)


@dataclass(frozen=True, slots=True)
class BfclCase:
    """One BFCL entry: the conversation, the functions offered, and the ground truth."""

    id: str
    category: str
    question: list[dict[str, Any]]
    """The first (only) turn's messages."""
    functions: list[dict[str, Any]]
    """BFCL function docs: name, description, parameters (BFCL types: dict, float...)."""
    ground_truth: list[dict[str, Any]]
    """Possible answers: [{function name: {param: [allowed values]}}]; [] for irrelevance."""


def _lines(z: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in z.read(name).decode().splitlines() if line.strip()]


def load_category(category: str, wheel: Path | None = None) -> list[BfclCase]:
    """Every case of `category`, with its possible answers where BFCL has them."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}: one of {', '.join(CATEGORIES)}")
    with zipfile.ZipFile(wheel or wheel_path()) as z:
        entries = _lines(z, f"bfcl_eval/data/BFCL_v4_{category}.json")
        answers: dict[str, list[dict[str, Any]]] = {}
        if category != "irrelevance":
            for row in _lines(z, f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json"):
                answers[row["id"]] = row["ground_truth"]
    return [
        BfclCase(
            id=e["id"],
            category=category,
            question=e["question"][0],
            functions=e["function"],
            ground_truth=answers.get(e["id"], []),
        )
        for e in entries
    ]
