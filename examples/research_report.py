"""A short research report: the planner decomposes the goal, executors do the parts.

Shows a plan-shaped goal (write a report from two sources) that the planner breaks
into extract, summarize and compare subtasks: the ready-made `Extractor` and
`Summarizer` on nano, and a `Compare` agent on mini that works the price difference
out with the `Calculator` tool. Its Python verifier checks the comparison against the
sources; the planner composes the report, and `check_numbers` fails the run if the
report states a number no subtask produced.

    tiered run examples/research_report.py
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tiered import Agent, Subtask, Tier, Workflow, check_numbers
from tiered.agents import Extractor, Summarizer
from tiered.tools import Calculator

FACTS = {"Swift Parcel": (96, 850), "Budget Post": (88, 620)}
"""(on-time percent, price of a standard parcel in cents) per carrier: the ground truth."""

SOURCES = {
    name: (
        f"{name} delivered {on_time}% of our orders on time last quarter. "
        f"A standard parcel costs {price} cents."
    )
    for name, (on_time, price) in FACTS.items()
}
"""The two sources the report is written from (short, so small models can read them)."""


class CompareInput(BaseModel):
    question: str = Field(description="What to compare, in one line.")


class Comparison(BaseModel):
    cheaper: str = Field(description="The carrier with the lower price.")
    price_difference_cents: int = Field(description="Higher price minus lower, in cents.")
    more_punctual: str = Field(description="The carrier with the higher on-time rate.")
    recommendation: str = Field(description="One sentence: which carrier and why.")


class Compare(Agent[Comparison]):
    """Compares carriers from extracted facts; uses the calculator for the price gap."""

    tier = Tier.MINI
    instructions = (
        "Compare the carriers using the facts in the task's earlier outputs. Use the "
        "calculator for the price difference, then name the cheaper and the more punctual "
        "carrier and recommend one in a sentence."
    )
    tools = (Calculator(),)
    input_type = CompareInput
    output_type = Comparison
    max_turns = 4
    max_output_tokens = 300


def comparison_matches_sources(subtask: Subtask, output: Comparison) -> str | None:
    """Reject a comparison that gets the cheaper carrier, the gap or punctuality wrong."""
    by_price = sorted(FACTS, key=lambda name: FACTS[name][1])
    cheaper, dearer = by_price[0], by_price[-1]
    punctual = max(FACTS, key=lambda name: FACTS[name][0])
    gap = FACTS[dearer][1] - FACTS[cheaper][1]
    problems = []
    if cheaper.lower() not in output.cheaper.lower():
        problems.append(f"cheaper is {cheaper}, not {output.cheaper!r}")
    if output.price_difference_cents != gap:
        problems.append(f"the price difference is {gap} cents, not {output.price_difference_cents}")
    if punctual.lower() not in output.more_punctual.lower():
        problems.append(f"more punctual is {punctual}, not {output.more_punctual!r}")
    return "; ".join(problems) or None


def _goal() -> str:
    sources = " ".join(f"[{name}] {text}" for name, text in SOURCES.items())
    return (
        "Write a short report recommending one of two shipping carriers. "
        f"Sources: {sources} Extract each carrier's on-time percent and parcel price, "
        "summarize each source in one line, and compare the two carriers."
    )


GOAL = _goal()

workflow = Workflow(
    executors=[Extractor(), Summarizer(), Compare()],
    goal=GOAL,
    verify={"Compare": comparison_matches_sources},
    answer_check=check_numbers,
    description="research report: extract, summarize, compare, composed by the planner",
)


def expected() -> dict[str, Any]:
    """What a right report says, for tests and for the reader."""
    return {"cheaper": "Budget Post", "gap_cents": 230, "more_punctual": "Swift Parcel"}
