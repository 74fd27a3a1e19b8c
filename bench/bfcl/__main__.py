"""`python -m bench.bfcl agree | report RESULTS.json [--trace TRACE.jsonl] | merge OUT DIR...`.

The measurement itself is `tiered eval` (run it under the heavy-job lock):

    BFCL_PER_CATEGORY=20 BFCL_TRACE=/tmp/bfcl-trace.jsonl flock /tmp/tiered-heavy.lock \\
        tiered eval bench/bfcl/evaluation.py --tiers nano,mini --json > results.json

`agree` shows our AST rule gives BFCL's verdict on the ground truth (and on perturbed
answers); `report` renders the BENCHMARKS.md section from the eval's JSON; `merge` joins
the chunks `bench/bfcl/chunks.sh` wrote (one category and tier each) into one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.bfcl.checker import score_with_bfcl
from bench.bfcl.confidence import gate_sweep, separation_table
from bench.bfcl.data import CATEGORIES, BfclCase, load_category
from bench.bfcl.economics import Strategy, replay
from bench.bfcl.evaluation import agent, build
from bench.bfcl.rule import score
from tiered import Tier
from tiered._eval_report import CaseOutcome, EvalReport, TierSummary


def ground_truth_calls(case: BfclCase) -> list[dict[str, Any]]:
    """The first allowed value of every parameter BFCL's answer names ('' = left out)."""
    return [
        {name: {k: v[0] for k, v in args.items() if v and v[0] != ""}}
        for answer in case.ground_truth
        for name, args in answer.items()
    ]


def perturbed(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same calls with the first argument's value changed."""
    out: list[dict[str, Any]] = json.loads(json.dumps(calls))
    for call in out:
        for args in call.values():
            for k, v in args.items():
                args[k] = (
                    v + 1
                    if isinstance(v, int | float) and not isinstance(v, bool)
                    else (f"{v}x" if isinstance(v, str) else None)
                )
                return out
    return out


def agree() -> None:
    """Print, per category, how often BFCL accepts the ground truth and how often our
    rule gives BFCL's verdict (on the ground truth and on perturbed answers)."""
    print("category | cases | BFCL accepts ground truth | rule agrees (truth) | rule agrees "
          "(perturbed)")  # fmt: skip
    print("---|---|---|---|---")
    for category in CATEGORIES:
        if category == "irrelevance":
            continue
        cases = load_category(category)
        accepted = same = same_bad = 0
        for c in cases:
            for calls, counter in ((ground_truth_calls(c), "truth"), (None, "bad")):
                calls = calls if calls is not None else perturbed(ground_truth_calls(c))
                theirs = score_with_bfcl(category, c.functions, calls, c.ground_truth)[0]
                ours = score(category, c.functions, calls, c.ground_truth)[0]
                if counter == "truth":
                    accepted += theirs
                    same += theirs == ours
                else:
                    same_bad += theirs == ours
        n = len(cases)
        print(f"{category} | {n} | {accepted} | {same}/{n} | {same_bad}/{n}")


def _usd(d: Decimal) -> str:
    return f"${d:.6f}"


def _load_outcomes(path: str) -> list[dict[str, Any]]:
    """Outcomes from `tiered eval --json` output or from its `--outcomes` JSONL."""
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    outcomes: list[dict[str, Any]] = json.loads(text)["outcomes"]
    return outcomes


def _summaries(
    outcomes: list[dict[str, Any]], tiers: list[str], category: str | None
) -> list[dict[str, Any]]:
    rows = []
    for t in tiers:
        picked = [CaseOutcome.from_dict(o) for o in outcomes
                  if o["tier"] == t and category in (None, o["category"])]  # fmt: skip
        if picked:
            rows.append(TierSummary.of(Tier(t), picked[0].model, picked).to_dict())
    return rows


def _sizes(spec: str) -> dict[str, int]:
    """`--per-category`: "12" for every category, or "8,irrelevance=12"."""
    sizes = {}
    for part in spec.split(","):
        name, _, n = part.rpartition("=")
        sizes[name.strip()] = int(n)
    return sizes


def report(path: str, trace: str | None, per_category: str, swap: bool = False) -> None:
    """The BENCHMARKS.md section, from `tiered eval --json` (or `--outcomes`) output."""
    outcomes = _load_outcomes(path)
    tiers = [t for t in ("nano", "mini", "flagship") if any(o["tier"] == t for o in outcomes)]
    cats = [c for c in CATEGORIES if any(o["category"] == c for o in outcomes)]
    sizes = _sizes(per_category)
    split = {
        c.id: str(c.metadata["split"])
        for cat in cats
        for c in build(sizes.get(cat, sizes.get("", 20)), (cat,)).loaded_cases()
    }
    if swap:  # the other way round: a check that a rule is not fitted to one half
        split = {k: "report" if v == "calibrate" else "calibrate" for k, v in split.items()}
    models = {o["tier"]: o["model"] for o in outcomes}
    print(f"Models: {', '.join(f'{k} = {models[k]}' for k in tiers)}.\n")
    print("category | tier | n | accuracy | 95% CI | tokens/case (in+out) | p50 s | p95 s "
          "| OpenAI-eq $/case | failures")  # fmt: skip
    print("---|---|---|---|---|---|---|---|---|---")
    scopes: list[str | None] = [*cats, None]
    for scope in scopes:
        for r in _summaries(outcomes, tiers, scope):
            toks = (r["input_tokens"] + r["output_tokens"]) / max(1, r["n"])
            fails = ", ".join(f"{k} {v}" for k, v in r["failures"].items()) or "-"
            ci = f"{100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}%"
            print(f"{scope or 'all'} | {r['tier']} | {r['n']} | {100 * r['success_rate']:.0f}% | "
                  f"{ci} | {toks:,.0f} | {r['latency_p50_s']:.1f} | {r['latency_p95_s']:.1f} | "
                  f"{_usd(Decimal(r['equivalent_cost_per_case']))} | {fails}")  # fmt: skip
    strategies = replay(outcomes, split, tiers)
    base = next(s for s in strategies if s.name == f"all-{tiers[-1]}")
    print(f"\nStrategies on the report half ({base.n} cases; the router calibrated on the "
          "other half):\n")  # fmt: skip
    print("strategy | accuracy | OpenAI-eq $ | vs all-mini cost | escalations | starts")
    print("---|---|---|---|---|---")
    for s in strategies:
        ratio = s.equivalent_cost / base.equivalent_cost if base.equivalent_cost else Decimal(0)
        starts = ", ".join(f"{k}: {v}" for k, v in s.starts.items()) or "-"
        print(
            f"{s.name} | {s.successes}/{s.n} = {100 * s.accuracy:.1f}% | "
            f"{_usd(s.equivalent_cost)} | {ratio:.2f}x | {s.escalations} | {starts}"
        )
    print("\n```")
    print(frontier(strategies, base))
    print("```")
    print("\nConfidence against correctness (each tier's own runs, both halves):\n")
    print(separation_table(outcomes, tiers))
    print(f"\nOne gate for every case on the report half (start on {tiers[0]}, send visible "
          f"failures and replies under the gate to {tiers[-1]}):\n")  # fmt: skip
    print("```\ngate   accuracy  cost vs all-" + tiers[-1] + " (each # = 5%)   sent up")
    for gate, right, n, share, up in gate_sweep(outcomes, split, (tiers[0], tiers[-1])):
        print(f"{gate:4.2f}  {100 * right / max(1, n):5.1f}%   {'#' * round(share * 20):<24} "
              f"{share:4.2f}x  {up}/{n}")  # fmt: skip
    print("```")
    if trace:
        _trace_summary(trace)


def frontier(strategies: list[Strategy], base: Strategy) -> str:
    """Accuracy against cost, as text: one row per strategy, bar = cost vs all-mini."""
    lines = ["accuracy  cost vs all-mini (each # = 5%)"]
    for s in sorted(strategies, key=lambda s: s.equivalent_cost):
        ratio = float(s.equivalent_cost / base.equivalent_cost) if base.equivalent_cost else 0.0
        lines.append(f"{100 * s.accuracy:5.1f}%   {'#' * round(ratio * 20):<24} {ratio:4.2f}x  "
                     f"{s.name}")  # fmt: skip
    return "\n".join(lines)


def _trace_summary(path: str) -> None:
    text = Path(path).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    same = sum(r["bfcl"][0] == r["ours"][0] for r in rows)
    print(f"\nOur AST rule gave BFCL's verdict on {same} of {len(rows)} scored model runs.")
    by: dict[tuple[str, str], Counter[int]] = {}
    for r in rows:
        cat = r["id"].rsplit("_", 1)[0]
        by.setdefault((cat, r["tier"]), Counter())[len(r["calls"])] += 1
    print("\ncategory | tier | calls made per run (count: runs) | median turns")
    print("---|---|---|---")
    turns: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        turns.setdefault((r["id"].rsplit("_", 1)[0], r["tier"]), []).append(r["turns"])
    for key, counts in sorted(by.items()):
        spread = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"{key[0]} | {key[1]} | {spread} | {statistics.median(turns[key]):g}")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def merge(out: str, chunks: list[str]) -> None:
    """One run from chunk folders: outcomes and traces joined (a later chunk's row for the
    same case and tier wins), results and calibration recomputed, machine logs kept."""
    outcomes: dict[tuple[str, str], dict[str, Any]] = {}
    traces: dict[tuple[str, str], dict[str, Any]] = {}
    machine: list[str] = []
    for d in map(Path, chunks):  # in the order given: a later one wins
        outcomes.update({(o["case_id"], o["tier"]): o for o in _jsonl(d / "outcomes.jsonl")})
        traces.update({(t["id"], t["tier"]): t for t in _jsonl(d / "trace.jsonl")})
        if (d / "machine.txt").exists():
            machine += [f"{d.name}: {line}" for line in (d / "machine.txt").read_text().split("\n")
                        if line]  # fmt: skip
    rows = sorted(outcomes.values(), key=lambda o: (o["category"] or "", o["case_id"], o["tier"]))
    names = [t for t in ("nano", "mini", "flagship") if any(o["tier"] == t for o in rows)]
    tiers = tuple(Tier(t) for t in names)
    report = EvalReport(
        name="bfcl",
        agent=agent,
        models={Tier(o["tier"]): o["model"] for o in rows},
        tiers=tiers,
        outcomes=tuple(CaseOutcome.from_dict(o) for o in rows),
    )
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    (target / "results.json").write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    report.calibration().save(target / "calibration.json")
    (target / "outcomes.jsonl").write_text("".join(json.dumps(o) + "\n" for o in rows))
    (target / "trace.jsonl").write_text(
        "".join(json.dumps(traces[k]) + "\n" for k in sorted(traces))
    )
    (target / "machine.txt").write_text("".join(line + "\n" for line in machine))
    print(f"{len(rows)} outcomes from {len(chunks)} chunks -> {target}")


def main() -> None:
    """Parse and dispatch."""
    p = argparse.ArgumentParser(prog="python -m bench.bfcl")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("agree", help="our AST rule against BFCL's checker on the ground truth")
    r = sub.add_parser("report", help="render the BENCHMARKS.md section from eval JSON")
    r.add_argument("results")
    r.add_argument("--trace")
    r.add_argument(
        "--per-category", default="20", help='cases per category: "12" or "8,irrelevance=12"'
    )
    r.add_argument("--swap-halves", action="store_true", help="calibrate on the report half")
    m = sub.add_parser("merge", help="join chunk folders into one run folder")
    m.add_argument("out")
    m.add_argument("chunks", nargs="+")
    args = p.parse_args()
    if args.command == "agree":
        agree()
    elif args.command == "merge":
        merge(args.out, args.chunks)
    else:
        report(args.results, args.trace, args.per_category, args.swap_halves)


if __name__ == "__main__":
    main()
