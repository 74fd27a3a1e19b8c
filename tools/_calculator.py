"""`Calculator`: arithmetic a model can trust, evaluated by walking the AST (never `eval`)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from tiered import ModelRetry, RunContext, Tool

__all__ = ("Calculator",)

Number = int | float

_MAX_EXPRESSION_CHARS = 1_000
_MAX_INT_BITS = 4_096
"""Largest integer result (about 1,233 digits): bounds memory, time and the reply's size."""

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _round(x: Number, ndigits: int | None = None) -> Number:
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 100):
        raise ValueError("round's second argument must be a whole number between -100 and 100")
    return round(x) if ndigits is None else round(x, ndigits)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": _log,
    "log10": math.log10,
    "exp": math.exp,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


class _Refused(Exception):
    """Internal: the expression cannot be evaluated; the message says why."""


def _check_size(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise _Refused(f"the result has more than {_MAX_INT_BITS} bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused("the result is not a finite number")
    return value


def _pow(base: Number, exponent: Number) -> Number:
    """`base ** exponent`, refusing results too large to compute before computing them."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        at_least_bits = exponent * (abs(base).bit_length() - 1)
        if at_least_bits > _MAX_INT_BITS:
            raise _Refused(f"{base} ** {exponent} would have more than {_MAX_INT_BITS} bits")
    result = base**exponent
    if isinstance(result, complex):
        raise _Refused("a negative number to a fractional power has no real result")
    return result


def _multiply(a: Number, b: Number) -> Number:
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and a.bit_length() + b.bit_length() > (_MAX_INT_BITS + 1)
    ):
        raise _Refused(f"the product would have more than {_MAX_INT_BITS} bits")
    return a * b


def _evaluate(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _Refused(f"{node.value!r} is not a number")
        return _check_size(node.value)
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise _Refused(f"unknown name {node.id!r} (constants: {', '.join(_CONSTANTS)})")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check_size(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _check_size(_pow(left, right))
        if isinstance(node.op, ast.Mult):
            return _check_size(_multiply(left, right))
        return _check_size(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise _Refused(f"unknown function (functions: {', '.join(_FUNCTIONS)})")
        if node.keywords:
            raise _Refused(f"{node.func.id}() takes positional arguments only")
        args = [_evaluate(a) for a in node.args]
        try:
            return _check_size(_FUNCTIONS[node.func.id](*args))
        except TypeError as exc:
            raise _Refused(f"{node.func.id}(): {exc}") from None
    raise _Refused(f"{type(node).__name__} is not allowed: use numbers, + - * / // % ** and ( )")


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression; raises `ValueError` saying what to fix."""
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise ValueError(f"the expression is longer than {_MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        detail = getattr(exc, "msg", None) or "nested too deeply"
        raise ValueError(f"cannot parse {expression!r}: {detail}") from None
    try:
        return _evaluate(tree)
    except _Refused as exc:
        raise ValueError(f"cannot evaluate {expression!r}: {exc}") from None
    except ZeroDivisionError:
        raise ValueError(f"cannot evaluate {expression!r}: division by zero") from None
    except OverflowError:
        raise ValueError(f"cannot evaluate {expression!r}: the result is too large") from None
    except RecursionError:
        raise ValueError(f"cannot evaluate {expression!r}: nested too deeply") from None
    except ValueError as exc:  # math domain errors: sqrt(-1), log(0)
        raise ValueError(f"cannot evaluate {expression!r}: {exc}") from None


class Calculator(Tool):
    """Evaluate an arithmetic expression and return the number.

    Supports numbers, + - * / // % ** (integer results up to about 1,200 digits),
    unary minus, parentheses, the constants pi and e, and the functions abs, round,
    min, max, sqrt, floor, ceil, log (natural, or log(x, base)), log10 and exp.
    """

    timeout = 5.0

    class Args(BaseModel):
        expression: str = Field(
            description="The expression, e.g. '(3 + 4) * 2 ** 10 / sqrt(2)'",
            max_length=_MAX_EXPRESSION_CHARS,
        )

    async def run(self, args: Args, ctx: RunContext[Any]) -> Number:
        """Return the value of `args.expression`; asks the model to fix a bad expression."""
        try:
            return evaluate(args.expression)
        except ValueError as exc:
            raise ModelRetry(f"{exc}. Fix the expression and call calculator again.") from None
