"""The smallest custom `Tool` and `Agent`: a word counter the model must call.

Shows that a `Tool` subclass is a docstring (what the model reads), a nested `Args`
model and an async `run`; an `Agent` subclass is a docstring, instructions, types and
its tools.
Counting is deterministic, so it is the tool's job; the model only decides to call it
and reports the result in the typed output.

    python examples/custom_agent.py
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
from pydantic import BaseModel

from tiered import Agent, AgentResult, RunContext, Tier, Tool
from tiered.models import Model, models_from_env


class CountWords(Tool):
    """Count the words in a text."""

    class Args(BaseModel):
        text: str

    async def run(self, args: Args, ctx: RunContext[Any]) -> dict[str, int]:
        return {"words": len(args.text.split())}


class Count(BaseModel):
    words: int


class WordCounter(Agent[Count]):
    """Counts the words in a text with the count_words tool."""

    tier = Tier.NANO
    instructions = "Call count_words on the text, then report its count."
    tools = (CountWords(),)
    tool_choice = "required"
    output_type = Count


TEXT = "The quick brown fox jumps over the lazy dog"


async def main(models: Mapping[Tier, Model] | None = None) -> AgentResult[Count]:
    """Count the words of `TEXT`."""
    return await WordCounter().run(TEXT, models=models)


def show(result: AgentResult[Count]) -> str:
    """The count, and whether it matches Python's."""
    truth = len(TEXT.split())
    verdict = "right" if result.output.words == truth else f"wrong (it is {truth})"
    return (
        f"{TEXT!r}: {result.output.words} words, {verdict}; {result.turns} requests on "
        f"{result.model}, {result.usage.total_tokens:,} tokens"
    )


if __name__ == "__main__":

    async def _run() -> None:
        ladder = models_from_env()
        try:
            print(show(await main(ladder)))
        finally:
            await ladder.aclose()

    anyio.run(_run)
