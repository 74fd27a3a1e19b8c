"""Fast constructors for the frozen dataclasses made once per model call or attempt.

A frozen slotted dataclass's `__init__` sets each field through `object.__setattr__`;
`builder(cls)` returns a keyword-only function that fills the slots directly (what
`dataclasses` itself generates, without the per-field attribute lookups), so the hot
path pays a third of the cost. The object is the same: equal, hashable, frozen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ("builder",)

T = TypeVar("T")


def builder(cls: type[T]) -> Callable[..., T]:
    """A keyword-only constructor of the frozen slotted dataclass `cls` that takes every
    field (no defaults) and runs no `__post_init__`; refuses a class that has one."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"builder({cls.__name__}): a dataclass without __post_init__ only")
    names = [f.name for f in dataclasses.fields(cls)]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for name in names:
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__  # the slot's descriptor
    body = "".join(f"    _set_{name}(obj, {name})\n" for name in names)
    source = f"def build(*, {', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n"
    exec(source, namespace)  # as `dataclasses` builds `__init__`: one plain function
    build: Callable[..., T] = namespace["build"]
    build.__qualname__ = f"{cls.__qualname__}.build"
    return build
