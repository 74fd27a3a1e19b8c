"""Import a user's Python file and take one named object from it (a workflow, an evaluation)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tiered._errors import UserError

__all__ = ("load_named",)

T = TypeVar("T")


def load_named(path: str | Path, attr: str, kind: type[T], *, example: str, shape: str) -> T:
    """The `attr` a file defines: an instance of `kind`, or a zero-argument function
    returning one. Every way this can go wrong is a `UserError` saying what to write."""
    file = Path(path)
    what = attr.replace("_", " ")
    if not file.is_file():
        raise UserError(f"no {what} file at {str(file)!r}: pass a path like {example}")
    name = f"tiered_{attr}_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot import {str(file)!r} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    found: Any = getattr(module, attr, None)
    if callable(found) and not isinstance(found, kind):
        factory: Callable[[], Any] = found
        found = factory()
    if not isinstance(found, kind):
        raise UserError(
            f"{str(file)!r} must define `{attr} = {shape}` or a function `{attr}()` returning one"
        )
    return found
