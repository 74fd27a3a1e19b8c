"""1,000 documents through the nano `Summarizer`: what the cheap tier and the cache save.

Shows bulk work with no planner: one subtask per document, run 16 at a time, every
one on the nano tier, with the summarizer's own check (a summary over the word limit
is sent back to be shortened). The report gives the share of input tokens served from
the prompt cache (the summarizer's instructions are the same on every call, so a
provider caches them) and the OpenAI-equivalent cost against the same tokens on the
flagship. On the embedded models, pass `--limit` to keep it to a few documents.

    python examples/bulk_summarize.py [--limit N]
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import anyio

from tiered import Limits, Orchestrator, Plan, RunResult, Subtask, Tier
from tiered.agents import Summarizer
from tiered.models import Model, models_from_env

_PRODUCTS = ("kettle", "toaster", "blender", "lamp", "desk fan", "rice cooker", "kettle")
_VERDICTS = (
    ("arrived on time and works well", "would buy again"),
    ("arrived two days late but works", "packaging was damaged"),
    ("stopped working after a week", "support replaced it quickly"),
    ("is louder than expected", "the price was fair"),
    ("looks great on the counter", "the manual is confusing"),
)


def documents(n: int = 1000) -> list[str]:
    """`n` short, made-up customer reviews (deterministic, so reruns compare)."""
    docs = []
    for i in range(n):
        product = _PRODUCTS[i % len(_PRODUCTS)]
        first, second = _VERDICTS[(i * 7) % len(_VERDICTS)]
        stars = 1 + (i * 3) % 5
        docs.append(
            f"Review {i + 1}: I ordered the {product} in week {1 + i % 52}. It {first}, "
            f"and {second}. Overall {stars} out of 5 stars."
        )
    return docs


@dataclass(frozen=True, slots=True)
class BulkReport:
    """What the bulk run did and cost."""

    result: RunResult
    documents: int

    @property
    def summarized(self) -> int:
        """Documents with a summary."""
        return len(self.result.outputs)

    @property
    def cached_share(self) -> float:
        """Input tokens served from the prompt cache, as a share of all input tokens."""
        u = self.result.usage
        return u.cached_input_tokens / u.input_tokens if u.input_tokens else 0.0

    @property
    def saving(self) -> Decimal:
        """How many times cheaper than the same tokens on the flagship."""
        spent = self.result.equivalent_cost
        return self.result.counterfactual_cost / spent if spent else Decimal(0)


async def main(
    models: Mapping[Tier, Model] | None = None, *, limit: int = 1000, concurrency: int = 16
) -> BulkReport:
    """Summarize the first `limit` documents in at most 20 words each."""
    docs = documents(limit)
    plan = Plan(
        subtasks=tuple(
            Subtask(
                id=f"doc_{i:04d}",
                agent="Summarizer",
                instructions="Summarize the review.",
                arguments={"text": doc, "max_words": 20},
            )
            for i, doc in enumerate(docs, 1)
        )
    )
    orchestrator = Orchestrator(
        [Summarizer()], models=models, limits=Limits(concurrency=concurrency)
    )
    result = await orchestrator.run("summarize the reviews", plan=plan, compose=False)
    return BulkReport(result=result, documents=len(docs))


def show(report: BulkReport) -> str:
    """The summary of the bulk run, as the example prints it."""
    r, u = report.result, report.result.usage
    first = next(iter(r.outputs.values()), None)
    return "\n".join(
        [
            f"{report.summarized}/{report.documents} documents summarized ({r.status.value}) "
            f"in {r.wall_time_s:.1f}s",
            f"first summary: {first.summary if first is not None else '-'}",
            f"tokens: {u.input_tokens:,} in ({report.cached_share:.0%} from the prompt cache), "
            f"{u.output_tokens:,} out, {u.requests:,} requests",
            f"cost at OpenAI prices: ${r.equivalent_cost:.4f} on nano vs "
            f"${r.counterfactual_cost:.4f} all-flagship ({report.saving:.1f}x cheaper)",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000, help="documents to summarize")
    args = parser.parse_args()

    async def _run() -> None:
        ladder = models_from_env()
        try:
            print(show(await main(ladder, limit=args.limit)))
        finally:
            await ladder.aclose()

    anyio.run(_run)
