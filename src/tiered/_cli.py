"""The `tiered` command.

Each subcommand is one function that registers its parser and a handler on the
subparsers (`set_defaults(handler=...)`, the handler taking the parsed namespace and
returning the exit status); list it in `_COMMANDS` and `main` picks it up. A large one
lives in its own module (`run` in `_cli_run.py`). Exit status: 0 success, 1 a run
failed, 2 misuse (bad arguments, unknown model).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from tiered import __version__
from tiered._catalog import Catalog, ModelSpec, Pricing, Tier, default_catalog
from tiered._cli_eval import add_eval_command, add_routing_command
from tiered._cli_run import add_run_command
from tiered._cli_runs import add_resume_command, add_runs_command
from tiered._errors import TieredError, UserError
from tiered._usage import Usage
from tiered.models import parse_model_map
from tiered.models._select import ladder_specs, split_equivalent

__all__ = ("main",)

_Subparsers = Any  # argparse's _SubParsersAction is private; typed loosely on purpose.
_CENT = Decimal("0.01")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `tiered` command line; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UserError as exc:
        print(f"tiered: error: {exc}", file=sys.stderr)
        return 2
    except TieredError as exc:
        print(f"tiered: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiered",
        description="Planner/executor agents on a tier ladder, with exact cost metering.",
    )
    parser.add_argument("--version", action="version", version=f"tiered {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(subparsers)
    return parser


# --- tiered models --------------------------------------------------------------------


def _add_models(subparsers: _Subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the model catalog",
        description="List the model catalog, and how a --models / TIERED_MODELS map is priced.",
    )
    p.add_argument(
        "--models",
        help="tier-to-model map to show prices for (default: TIERED_MODELS), e.g. "
        "nano=qwen2.5:0.5b@gpt-5.4-nano,mini=...,flagship=...",
    )
    p.set_defaults(handler=_models)


def _models(args: argparse.Namespace) -> int:
    catalog = default_catalog()
    specs = list(catalog.values())  # registered cheapest tier first
    header = (
        "model",
        "tier",
        "input",
        "cached input",
        "output",
        "context",
        "max output",
        "long context",
    )
    map_text = args.models or os.environ.get("TIERED_MODELS", "")
    ladder = _ladder_rows(parse_model_map(map_text), catalog) if map_text.strip() else []
    rows = [header, *(_model_row(s) for s in specs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print(
        "$ per 1M tokens. Long context: a call with more than N input tokens pays "
        "input/cached/output at those rates on every token."
    )
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if ladder:
        print()
        print("Your models (NAME@OPENAI_MODEL meters a self-hosted model at that model's prices):")
        widths = [max(len(r[i]) for r in ladder) for i in range(3)]
        for row in ladder:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _ladder_rows(names: dict[Tier, str], catalog: Catalog) -> list[tuple[str, ...]]:
    """How each model of a tier map is metered: catalog prices, an equivalent's, or none."""
    rows: list[tuple[str, ...]] = [("tier", "model", "priced as")]
    for tier, spec in ladder_specs(names, catalog).items():
        name = split_equivalent(names[tier], catalog)[0]
        if spec is None:
            priced = "catalog prices (above)"
        elif spec.equivalent is not None:
            p = catalog[spec.equivalent].prices()
            priced = (
                f"{spec.equivalent}: {_usd(p.input)} / {_usd(p.cached_input)} / "
                f"{_usd(p.output)} per 1M"
            )
        else:
            priced = (
                f"no price known: write {name}@{catalog.for_tier(tier).name} to price it "
                "(a dollar --budget is refused until then)"
            )
        rows.append((tier.value, name, priced))
    return rows


def _model_row(spec: ModelSpec) -> tuple[str, ...]:
    p = spec.prices()
    breaks = ", ".join(
        f">{_tokens(b.input_tokens)}: {_usd(b.input)}/{_usd(b.cached_input)}/{_usd(b.output)}"
        for b in p.breaks
    )
    return (
        spec.name,
        spec.tier.value,
        _usd(p.input),
        _usd(p.cached_input),
        _usd(p.output),
        _tokens(spec.context_window),
        _tokens(spec.max_output_tokens),
        breaks,
    )


# --- tiered cost ----------------------------------------------------------------------


def _add_cost(subparsers: _Subparsers) -> None:
    p = subparsers.add_parser(
        "cost",
        help="exact dollar cost of a call",
        description="Exact dollar cost of one call at the published prices.",
    )
    p.add_argument("model", help="a catalog model, e.g. gpt-5.4-mini (see `tiered models`)")
    p.add_argument("--input", type=_count, default=0, metavar="N", help="input tokens")
    p.add_argument("--output", type=_count, default=0, metavar="N", help="output tokens")
    p.add_argument(
        "--cached", type=_count, default=0, metavar="N", help="of the input, tokens read from cache"
    )
    p.add_argument("--batch", action="store_true", help="Batch API: 50%% off")
    p.add_argument("--regional", action="store_true", help="regional endpoint: +10%%")
    p.set_defaults(handler=_cost)


def _cost(args: argparse.Namespace) -> int:
    spec = default_catalog()[args.model]
    if args.cached > args.input:
        raise UserError(
            f"--cached ({args.cached}) cannot exceed --input ({args.input}): cached tokens "
            "are the part of the input read from the prompt cache"
        )
    usage = Usage(
        input_tokens=args.input, cached_input_tokens=args.cached, output_tokens=args.output
    )
    dollars = spec.cost(usage, batch=args.batch, regional=args.regional)
    print(_usd(dollars))
    print(f"{spec.name} ({spec.tier.value}): {_breakdown(spec.prices(), usage, args)}")
    return 0


def _breakdown(pricing: Pricing, usage: Usage, args: argparse.Namespace) -> str:
    inp, cached, out, note = pricing.input, pricing.cached_input, pricing.output, ""
    for b in pricing.breaks:
        if usage.input_tokens > b.input_tokens:
            inp, cached, out = b.input, b.cached_input, b.output
            note = f", long-context rate (input over {_tokens(b.input_tokens)})"
    parts = [f"{usage.input_tokens - usage.cached_input_tokens:,} input @ {_usd(inp)}"]
    if usage.cached_input_tokens:
        parts.append(f"{usage.cached_input_tokens:,} cached @ {_usd(cached)}")
    parts.append(f"{usage.output_tokens:,} output @ {_usd(out)}")
    line = " + ".join(parts) + " per 1M" + note
    if args.batch:
        line += ", x0.5 batch"
    if args.regional:
        line += ", x1.1 regional"
    return line


# --- formatting -----------------------------------------------------------------------


def _count(text: str) -> int:
    try:
        n = int(text.replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a token count: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"token counts cannot be negative: {n}")
    return n


def _usd(amount: Decimal) -> str:
    """Exact dollars, never rounded, never in scientific notation; at least cents."""
    d = amount.normalize()
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        d = d.quantize(_CENT)
    return f"${d:f}"


def _tokens(n: int) -> str:
    """400000 -> 400K, 1050000 -> 1.05M; other counts with thousands separators."""
    if n >= 1_000_000 and n % 10_000 == 0:
        return f"{(Decimal(n) / 1_000_000).normalize():f}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}K"
    return f"{n:,}"


_COMMANDS: tuple[Callable[[_Subparsers], None], ...] = (
    add_run_command,
    add_resume_command,
    add_runs_command,
    add_eval_command,
    add_routing_command,
    _add_models,
    _add_cost,
)
"""Every subcommand, in the order `tiered --help` lists them."""
