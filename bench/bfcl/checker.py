"""BFCL's own AST checker, imported from the wheel with its provider-SDK config stubbed.

`bfcl_eval/eval_checker/ast_eval/ast_checker.py` imports the provider SDKs only through
`bfcl_eval.constants.model_config` (for one flag: whether a model's API turned dots in
function names into underscores). We put a stub of that module in `sys.modules`, say
"no" (our calls are mapped back to the original dotted names before scoring), and
import the checker from the zip.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from bench.bfcl.data import wheel_path

__all__ = ("Verdict", "bfcl_checker", "score_with_bfcl")

Verdict = tuple[bool, str]
"""(valid, error type: '' when valid)."""
STUB_MODEL = "tiered-bench"


class _NoDots:
    underscore_to_dot = False


class _AnyModel(dict[str, Any]):
    def __missing__(self, key: str) -> _NoDots:
        return _NoDots()


@cache
def bfcl_checker(wheel: Path | None = None) -> Callable[..., dict[str, Any]]:
    """BFCL's `ast_checker` function, loaded from the wheel once per process."""
    path = str(wheel or wheel_path())
    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = _AnyModel()  # type: ignore[attr-defined]
    sys.modules["bfcl_eval.constants.model_config"] = stub
    if path not in sys.path:
        sys.path.append(path)  # zipimport: the wheel is a zip of the package
    from bfcl_eval.constants.enums import Language  # type: ignore[import-not-found]
    from bfcl_eval.eval_checker.ast_eval import ast_checker  # type: ignore[import-not-found]

    def check(functions: Any, calls: Any, answers: Any, category: str) -> dict[str, Any]:
        result: dict[str, Any] = ast_checker.ast_checker(
            functions, calls, answers, Language.PYTHON, category, STUB_MODEL
        )
        return result

    return check


def score_with_bfcl(
    category: str,
    functions: list[dict[str, Any]],
    calls: list[dict[str, dict[str, Any]]],
    answers: list[dict[str, Any]],
) -> Verdict:
    """BFCL's verdict on `calls` ([{name: {arg: value}}]); irrelevance wants no call."""
    if category == "irrelevance":
        return (True, "") if not calls else (False, "irrelevance_error:decoder_success")
    try:
        result = bfcl_checker()(functions, calls, answers, category)
    except Exception as exc:  # the checker trips on shapes it does not expect
        return False, f"checker_error:{type(exc).__name__}"
    return bool(result["valid"]), "" if result["valid"] else str(result.get("error_type", "?"))
