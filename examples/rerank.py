"""Passages reranked for a query by the ready-made `Reranker` (nano), called directly.

Shows the smallest way to use one agent without a planner: typed input in
(`RerankInput`), typed output back (`Ranking`, best first, scores 0 to 1), and the
tokens and OpenAI-equivalent dollars of that one call. The agent's own output check
sends an unknown or repeated id back to the model to fix before you ever see it.

    python examples/rerank.py
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from tiered import AgentResult, Tier
from tiered.agents import Candidate, Ranking, Reranker, RerankInput
from tiered.models import Model, models_from_env

QUERY = "How do I get a refund for a late delivery?"

PASSAGES = {
    "p1": "Shipping times: standard delivery takes 3 to 5 working days.",
    "p2": "Orders that arrive late are refunded in full: reply to your order email.",
    "p3": "Our kettles come with a two-year warranty against defects.",
    "p4": "To return an item, print the label from your account page.",
    "p5": "Refunds go back to the original card within 5 working days.",
}


async def main(models: Mapping[Tier, Model] | None = None) -> AgentResult[Ranking]:
    """Rank `PASSAGES` against `QUERY`."""
    request = RerankInput(
        query=QUERY,
        candidates=[Candidate(id=k, text=v) for k, v in PASSAGES.items()],
        top_k=3,
    )
    return await Reranker().run(request, models=models)


def show(result: AgentResult[Ranking]) -> str:
    """The top passages with their scores, then what the call cost."""
    lines = [f"query: {QUERY}"]
    for place, item in enumerate(result.output.ranked, 1):
        lines.append(f"{place}. {item.id} ({item.score:.2f}) {PASSAGES[item.id]}")
    lines.append(
        f"{result.model} ({result.tier.value}): {result.usage.total_tokens:,} tokens, "
        f"{result.turns} request(s), ${result.equivalent_cost:.6f} at OpenAI prices"
    )
    return "\n".join(lines)


if __name__ == "__main__":

    async def _run() -> None:
        ladder = models_from_env()
        try:
            print(show(await main(ladder)))
        finally:
            await ladder.aclose()

    anyio.run(_run)
