"""Contact records out of messy text, into a pydantic model, on the nano tier.

Shows the ready-made `Extractor` agent (from `tiered.agents`) run once per chunk of an
inbox dump, in parallel, with no planner: the plan is built in Python. A Python check
rejects any value that is not in the chunk it came from (a made-up email or phone
number), so the policy retries that chunk one tier up instead of keeping a guess. The
records come back as typed `Contact` objects.

    python examples/extract.py            # the environment's ladder (embedded models offline)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import anyio
from pydantic import BaseModel

from tiered import Orchestrator, Plan, RunResult, Subtask, Tier
from tiered.agents import Extraction, Extractor
from tiered.models import Model, models_from_env

MESSY = """\
fwd: new vendor contacts!!  -- from Dana
---
Dana Whitfield | Procurement Lead @ Northwind Traders
dana.whitfield@northwind.example   ph: (555) 201-3344
---
hi, it's Marco Ruiz (Blue Fin Logistics). best way to reach me is
marco@bluefin.example, or call +1 555 887 1200 after 10am
---
Priya N. -- no company yet, freelance -- priya.n@mail.example
"""
"""An inbox dump: one contact per `---` block, written three different ways."""

FIELDS = [
    {"name": "name", "description": "the person's full name as written"},
    {"name": "email", "description": "email address"},
    {"name": "phone", "description": "phone number as written, or null"},
    {"name": "company", "description": "company name, or null if none is given"},
]


class Contact(BaseModel):
    """One contact record."""

    name: str
    email: str
    phone: str | None = None
    company: str | None = None


def chunks(text: str) -> list[str]:
    """The blocks of `text` between `---` lines that hold an email address."""
    return [b.strip() for b in text.split("---") if "@" in b]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def values_in_text(subtask: Subtask, output: Extraction) -> str | None:
    """Reject an extraction with a value its chunk does not contain (a guess, not a read)."""
    text = _squash(str(subtask.arguments["text"]))
    made_up = [
        f"{f.name}={f.value!r}"
        for f in output.fields
        if f.value is not None and _squash(str(f.value)) not in text
    ]
    if made_up:
        return "not in the text: " + ", ".join(made_up) + " (copy values, or use null)"
    if not output.as_dict().get("email"):
        return "every chunk has an email address: copy it into `email`"
    return None


def plan_for(text: str) -> Plan:
    """One Extractor subtask per chunk, all independent."""
    return Plan(
        subtasks=tuple(
            Subtask(
                id=f"contact_{i}",
                agent="Extractor",
                instructions="Extract the contact in this text.",
                arguments={"text": chunk, "fields": FIELDS},
            )
            for i, chunk in enumerate(chunks(text), 1)
        )
    )


async def main(models: Mapping[Tier, Model] | None = None, text: str = MESSY) -> RunResult:
    """Extract every contact in `text`; `result.outputs` holds `Extraction`s by chunk."""
    orchestrator = Orchestrator([Extractor()], models=models, verify={"Extractor": values_in_text})
    return await orchestrator.run("extract contacts", plan=plan_for(text), compose=False)


def contacts(result: RunResult) -> list[Contact]:
    """The typed records, in chunk order."""
    out: list[Contact] = []
    for output in result.outputs.values():
        fields: dict[str, Any] = output.as_dict()
        out.append(Contact.model_validate(fields))
    return out


def show(result: RunResult) -> str:
    """The records and what they cost, as the example prints them."""
    lines = [repr(c) for c in contacts(result)]
    tiers = ", ".join(
        f"{k}: {' > '.join(t.value for t in r.tier_path) or r.status.value}"
        for k, r in result.subtasks.items()
    )
    lines.append(f"{result.status.value}; tiers used: {tiers}")
    lines.append(
        f"{result.usage.total_tokens:,} tokens, ${result.equivalent_cost:.6f} at OpenAI "
        f"prices (all-flagship: ${result.counterfactual_cost:.6f})"
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
