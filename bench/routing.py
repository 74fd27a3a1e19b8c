"""Routing economics: what each routing strategy pays per successful subtask.

A labelled workload runs through tiered's real `Orchestrator`, `RuleRouter`,
`ClassifierRouter`, `DefaultPolicy`, verifier (`AgentCheck`) and `Ledger`, priced with the
real catalog. Only the models are simulated: `SimModel` answers in process, and whether an
attempt is right is drawn from the published per-tier success rates (`CATEGORIES`
below, each citing its source) with a seeded RNG.

The outcome model:

- each subtask has a latent difficulty u ~ U(0, 1); a tier gets it right iff u < that tier's
  published rate for the subtask's benchmark (so a task a cheaper tier solves, a stronger
  tier solves too, and retrying on the same tier does not help);
- where OpenAI published no flagship figure (tau2-bench, Terminal-Bench, GPQA), the flagship
  is assumed no better than mini: the conservative choice for the baseline's success;
- the verifier (a nano agent) flags a wrong output with probability `recall` and a right
  one with probability `false_alarm`; only flagged outputs escalate; an undetected wrong
  output counts as a failure;
- each attempt costs its category's tokens (turns x input / output tokens per turn); the
  verifier and the classifier cost nano tokens of their own. No prompt-cache discount is
  applied here (the caching workload measures that separately).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from bench.routing_bound import known_rates_bound
from tiered import (
    STANDARD_TIERS,
    Action,
    Agent,
    AgentCheck,
    AssistantMessage,
    CalibratedRouter,
    Calibration,
    DefaultPolicy,
    EscalationDecision,
    Evidence,
    Failure,
    FailureKind,
    Ledger,
    Limits,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    Orchestrator,
    Plan,
    PolicyState,
    RouteDecision,
    RouteRequest,
    RoutingStats,
    Rule,
    Subtask,
    Tier,
    ToolCall,
    Usage,
    default_catalog,
    gain_aware_policy,
    tool,
)
from tiered import ClassifierRouter as _ClassifierRouter
from tiered import RuleRouter as _RuleRouter
from tiered._calibration import AgentCalibration, TierCalibration, agent_fingerprint
from tiered.models import Model

__all__ = (
    "CATEGORIES",
    "MIXES",
    "STRATEGIES",
    "Category",
    "SimModel",
    "StrategyResult",
    "World",
    "run_mix",
    "run_routing",
    "run_strategy",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Category:
    """One kind of subtask, tied to a published benchmark."""

    name: str
    benchmark: str
    rates: Mapping[Tier, float]
    """Published success rate per tier (flagship = mini where none was published)."""
    published_flagship: bool
    rule_tier: Tier
    """The executor agent's default tier, following the routing rules in the README."""
    classifier_tier: Tier
    """What a well-behaved nano classifier answers for this kind of work."""
    turns: int
    """Model calls per attempt."""
    input_tokens: int
    """Input tokens per call."""
    output_tokens: int
    """Output tokens per call (reasoning included)."""


def _rates(nano: float, mini: float, flagship: float | None) -> dict[Tier, float]:
    return {Tier.NANO: nano, Tier.MINI: mini, Tier.FLAGSHIP: flagship or mini}


CATEGORIES: tuple[Category, ...] = (
    Category(
        name="tool_use",
        benchmark="tau2-bench telecom",
        rates=_rates(0.925, 0.934, None),
        published_flagship=False,
        rule_tier=Tier.NANO,
        classifier_tier=Tier.NANO,
        turns=3,
        input_tokens=2_500,
        output_tokens=200,
    ),
    Category(
        name="knowledge_qa",
        benchmark="GPQA Diamond",
        rates=_rates(0.828, 0.880, None),
        published_flagship=False,
        rule_tier=Tier.NANO,
        classifier_tier=Tier.MINI,
        turns=1,
        input_tokens=600,
        output_tokens=1_500,
    ),
    Category(
        name="coding",
        benchmark="SWE-bench Pro",
        rates=_rates(0.524, 0.544, 0.577),
        published_flagship=True,
        rule_tier=Tier.MINI,
        classifier_tier=Tier.MINI,
        turns=8,
        input_tokens=12_000,
        output_tokens=1_200,
    ),
    Category(
        name="computer_use",
        benchmark="OSWorld-Verified",
        rates=_rates(0.390, 0.721, 0.750),
        published_flagship=True,
        rule_tier=Tier.MINI,
        classifier_tier=Tier.MINI,
        turns=12,
        input_tokens=6_000,
        output_tokens=250,
    ),
    Category(
        name="terminal",
        benchmark="Terminal-Bench 2.0",
        rates=_rates(0.463, 0.600, None),
        published_flagship=False,
        rule_tier=Tier.MINI,
        classifier_tier=Tier.MINI,
        turns=15,
        input_tokens=8_000,
        output_tokens=400,
    ),
)
_BY_NAME = {c.name: c for c in CATEGORIES}

MIXES: dict[str, dict[str, float]] = {
    "bulk": {
        "tool_use": 0.60,
        "knowledge_qa": 0.30,
        "coding": 0.05,
        "computer_use": 0.025,
        "terminal": 0.025,
    },
    "agentic": {
        "tool_use": 0.40,
        "knowledge_qa": 0.25,
        "coding": 0.15,
        "computer_use": 0.10,
        "terminal": 0.10,
    },
}
"""Workload mixes: `bulk` is the work tiered is built for (many cheap executor calls);
`agentic` gives a third of the subtasks to long multi-turn coding, terminal and computer use."""

VERIFIER_TOKENS = (1_000, 60)
"""(input, output) tokens of one verifier call on nano."""
CLASSIFIER_TOKENS = (450, 40)
"""(input, output) tokens of one classifier call on nano."""


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from `parts` (seeded draws independent of order)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(slots=True, kw_only=True)
class World:
    """The ground truth of one simulated workload, and the simulated judges' error rates."""

    seed: int
    subtasks: dict[str, tuple[Category, float]]
    """Subtask id -> (category, latent difficulty u)."""
    recall: float = 0.9
    """Probability the verifier flags a wrong output."""
    false_alarm: float = 0.02
    """Probability the verifier flags a right output."""
    classifier_accuracy: float = 0.85
    """Probability the classifier names its category's tier; else a random other tier."""
    classifier_unsure: float = 0.10
    """Probability the classifier answers below the router's confidence threshold."""
    mix: str = "bulk"
    correct_answers: set[str] = field(default_factory=set)
    calls: list[tuple[ModelSpec, Usage]] = field(default_factory=list)
    """Every simulated call, for checking the ledger's arithmetic."""
    verifier_cost: dict[str, Decimal] = field(default_factory=dict)
    """Dollars of verifier calls per category."""

    @classmethod
    def build(
        cls,
        n: int,
        *,
        mix: str = "bulk",
        seed: int = 7,
        recall: float = 0.9,
        false_alarm: float = 0.02,
    ) -> World:
        rng = random.Random(seed)
        names = list(MIXES[mix])
        weights = [MIXES[mix][name] for name in names]
        subtasks = {
            f"s{i}": (_BY_NAME[rng.choices(names, weights)[0]], rng.random()) for i in range(n)
        }
        return cls(seed=seed, subtasks=subtasks, recall=recall, false_alarm=false_alarm, mix=mix)

    @classmethod
    def halves(
        cls,
        n: int,
        *,
        mix: str = "bulk",
        seed: int = 7,
        recall: float = 0.9,
        false_alarm: float = 0.02,
    ) -> tuple[World, World]:
        """2n subtasks of one traffic, split: (the calibration half, the scored half).

        What is learned before a scored run comes from the first half only; every
        strategy is scored on the second, whose outcomes nothing saw before it ran.
        """
        both = cls.build(2 * n, mix=mix, seed=seed, recall=recall, false_alarm=false_alarm)
        items = list(both.subtasks.items())

        def half(part: list[tuple[str, tuple[Category, float]]]) -> World:
            return cls(
                seed=seed, subtasks=dict(part), recall=recall, false_alarm=false_alarm, mix=mix
            )

        return half(items[:n]), half(items[n:])

    def head(self, n: int) -> World:
        """The first `n` subtasks, same judges."""
        part = dict(list(self.subtasks.items())[:n])
        return World(
            seed=self.seed,
            subtasks=part,
            recall=self.recall,
            false_alarm=self.false_alarm,
            mix=self.mix,
        )

    def correct(self, sid: str, tier: Tier) -> bool:
        category, u = self.subtasks[sid]
        return u < category.rates[tier]


class Answer(BaseModel):
    answer: str


class Verdict(BaseModel):
    passed: bool
    problems: list[str]


class TierChoiceSim(BaseModel):
    tier: str
    confidence: float
    reason: str


@tool
def work(step: int) -> str:
    """Do one step of the task (simulated).

    Args:
        step: Which step this is.
    """
    return f"step {step} done"


class SimModel:
    """One tier's model: scripted turns, outcomes drawn from the world, real prices."""

    def __init__(self, spec: ModelSpec, world: World) -> None:
        self._spec = spec
        self.world = world

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    async def aclose(self) -> None:
        """Nothing to release."""

    def _respond(self, message: AssistantMessage, tokens: tuple[int, int]) -> ModelResponse:
        usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1], requests=1)
        self.world.calls.append((self._spec, usage))
        return ModelResponse(message=message, usage=usage, model_name=self._spec.name)

    async def request(self, request: ModelRequest) -> ModelResponse:
        agent = request.metadata.get("agent", "")
        last = request.messages[-1]
        text = getattr(last, "content", "") or ""
        if agent == "router":
            return self._classify(text)
        if agent == "verifier":
            return self._verify(text)
        sid = request.metadata.get("subtask_id", "")
        category, _ = self.world.subtasks[sid]
        turn = sum(1 for m in request.messages if isinstance(m, AssistantMessage)) + 1
        tokens = (category.input_tokens, category.output_tokens)
        if turn < category.turns:
            call = ToolCall(id=f"{sid}-{turn}", name="work", arguments=json.dumps({"step": turn}))
            return self._respond(AssistantMessage(tool_calls=(call,)), tokens)
        tier = self._spec.tier
        token = f"{sid}:{tier.value}:{len(request.messages)}"
        if self.world.correct(sid, tier):
            self.world.correct_answers.add(token)
        answer = Answer(answer=token).model_dump_json()
        return self._respond(AssistantMessage(content=answer), tokens)

    def _classify(self, brief: str) -> ModelResponse:
        data = json.loads(brief)
        category = _BY_NAME[data["instructions"].split("]", 1)[0].lstrip("[")]
        sid = data["instructions"].rsplit(" ", 1)[-1]
        w = self.world
        if _unit(w.seed, "classifier", sid) < w.classifier_accuracy:
            tier = category.classifier_tier
        else:
            others = [t for t in Tier if t is not category.classifier_tier]
            tier = others[int(_unit(w.seed, "classifier-other", sid) * len(others))]
        unsure = _unit(w.seed, "classifier-unsure", sid) < w.classifier_unsure
        choice = TierChoiceSim(tier=tier.value, confidence=0.4 if unsure else 0.9, reason="sim")
        return self._respond(AssistantMessage(content=choice.model_dump_json()), CLASSIFIER_TOKENS)

    def _verify(self, payload: str) -> ModelResponse:
        data = json.loads(payload)
        token = json.loads(data["output"])["answer"]
        right = token in self.world.correct_answers
        draw = _unit(self.world.seed, "verifier", token)
        flagged = draw < (self.world.false_alarm if right else self.world.recall)
        category = self.world.subtasks[token.split(":", 1)[0]][0]
        problems = [f"wrong answer [{category.name}]"] if flagged else []
        verdict = Verdict(passed=not flagged, problems=problems)
        response = self._respond(
            AssistantMessage(content=verdict.model_dump_json()), VERIFIER_TOKENS
        )
        spent = self.world.verifier_cost.get(category.name, Decimal(0))
        self.world.verifier_cost[category.name] = spent + self._spec.cost(response.usage)
        return response


# --- strategies ---------------------------------------------------------------------------


class FixedRouter:
    """Every subtask to one tier."""

    def __init__(self, tier: Tier) -> None:
        self.tier = tier

    async def route(
        self, request: RouteRequest, *, models: Mapping[Tier, Model], ledger: Ledger
    ) -> RouteDecision:
        return RouteDecision(tier=self.tier, reason=f"all on {self.tier.value}", router="fixed")


class OracleRouter:
    """Every subtask to the cheapest tier that gets it right (nano where none does): the
    floor no router that cannot see the answer reaches."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def route(
        self, request: RouteRequest, *, models: Mapping[Tier, Model], ledger: Ledger
    ) -> RouteDecision:
        sid = request.subtask.id
        tier = next((t for t in STANDARD_TIERS if self.world.correct(sid, t)), Tier.NANO)
        return RouteDecision(tier=tier, reason="oracle", router="oracle")


class NoEscalation:
    """Give up on the first failure (the single-tier baselines)."""

    def decide(self, failure: Failure, state: PolicyState) -> EscalationDecision:
        return EscalationDecision(action=Action.GIVE_UP, reason="baseline: no escalation")


def next_tier_gain(category: Category, tier: Tier) -> float:
    """P(the next tier up gets it right | this tier got it wrong), from the published rates."""
    i = STANDARD_TIERS.index(tier) + 1
    if i >= len(STANDARD_TIERS):
        return 0.0
    up = STANDARD_TIERS[i]
    here, there = category.rates[tier], category.rates[up]
    return max(0.0, there - here) / (1.0 - here) if here < 1 else 0.0


class GainAwarePolicy(DefaultPolicy):
    """`DefaultPolicy`, except a rejected output is not escalated when the next tier's
    published gain on that kind of work is below `min_gain` (a proposal, measured here).

    The simulated verifier names the kind of work in its message ("[category]"); the
    rule is composed in front of the default ones with `DefaultPolicy(rules=...)`.
    """

    def __init__(self, *, min_gain: float = 0.10) -> None:
        self.min_gain = min_gain

        def not_worth_it(f: Failure, s: PolicyState) -> bool:
            if f.kind is not FailureKind.VERIFIER_REJECTED or "[" not in f.message:
                return False
            category = _BY_NAME.get(f.message.rsplit("[", 1)[1].split("]", 1)[0])
            return category is not None and next_tier_gain(category, f.tier) < self.min_gain

        gain = Rule(
            name="gain",
            when=not_worth_it,
            action=Action.GIVE_UP,
            why=f"the next tier's published gain on this work is under {min_gain:.0%}",
        )
        defaults = DefaultPolicy.default_rules()
        super().__init__(rules=[*defaults[:1], gain, *defaults[1:]])


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    router: str
    """A tier (all on it), `rules`, `classifier`, `oracle`, `calibrated` (a
    `CalibratedRouter` with a 95% floor, 1-point tolerance) or `default` (no router given:
    the Orchestrator's own, a price-weighing `CalibratedRouter` over the stats)."""
    escalate: str
    """`none`, `default` (tiered's DefaultPolicy), `gain` (GainAwarePolicy), `shipped`:
    no policy given, so the Orchestrator's own default (gain-aware over `RoutingStats`),
    or `observe` (no escalation, verifier on: a holdout measured per tier)."""
    warmup: int = 0
    """`shipped` only: up to this many subtasks of the calibration half run first with
    the same stats, so the scored run starts from what earlier traffic taught."""
    holdout: bool = False
    """With `warmup`: the calibration subtasks run once on each tier with no escalation
    (a simulated `tiered eval`), instead of through the strategy itself."""
    value_factor: float | None = None
    """Set: the router and policy are built explicitly with this `value_factor` (the
    shipped default's one price knob; the default is 1)."""


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("all-flagship", "flagship", escalate="none"),
    Strategy("all-mini", "mini", escalate="none"),
    Strategy("all-nano", "nano", escalate="none"),
    Strategy("rules+escalation", "rules", escalate="default"),
    Strategy("classifier+escalation", "classifier", escalate="default"),
    Strategy("rules+gain-aware escalation", "rules", escalate="gain"),
    Strategy("oracle", "oracle", escalate="none"),
    Strategy("shipped default, learning from scratch", "default", escalate="shipped"),
    Strategy("shipped default, after the calibration half", "default", "shipped", warmup=100_000),
    Strategy(
        "shipped default, after a holdout of the calibration half on each tier",
        "default",
        "shipped",
        warmup=100_000,
        holdout=True,
    ),
    Strategy(
        "calibrated router (95% floor, 1-point tolerance) + shipped policy, same holdout",
        "calibrated",
        "shipped",
        warmup=100_000,
        holdout=True,
    ),
)

FRONTIER_FACTORS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
"""`value_factor`s of the shipped default swept for the accuracy-cost frontier."""


@dataclass(slots=True, kw_only=True)
class StrategyResult:
    strategy: str
    subtasks: int
    succeeded: int
    """Subtasks whose final output is right."""
    accepted_wrong: int
    """Subtasks that finished with a wrong output nobody flagged."""
    failed: int
    """Subtasks that ended without an output (flagged at the top tier)."""
    cost: Decimal
    attempts: int
    escalations: int
    by_tier: dict[str, str]
    sim_cost: Decimal
    """The same calls priced independently of the ledger (for the consistency check)."""
    attempt_cost: Decimal
    """Dollars summed over subtask attempts (excludes verifier and classifier calls)."""
    outcomes: dict[str, tuple[bool, Decimal]] = field(default_factory=dict, repr=False)
    """Subtask id -> (passed the verifier, dollars of its attempts)."""
    by_category: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per kind of subtask: subtasks, succeeded, and dollars on first tries,
    escalations, retries and the verifier (all its calls on the category's work)."""

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.subtasks if self.subtasks else 0.0

    @property
    def cost_per_success(self) -> Decimal:
        return self.cost / self.succeeded if self.succeeded else Decimal("Infinity")

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "subtasks": self.subtasks,
            "succeeded": self.succeeded,
            "accepted_wrong": self.accepted_wrong,
            "failed": self.failed,
            "success_rate": self.success_rate,
            "cost_usd": float(self.cost),
            "cost_per_success_usd": float(self.cost_per_success),
            "attempts": self.attempts,
            "escalations": self.escalations,
            "by_tier_usd": self.by_tier,
            "by_category": self.by_category,
        }


def _executors() -> dict[str, Agent[Any]]:
    return {
        c.name: Agent(
            name=c.name,
            instructions=f"Do one {c.benchmark}-style task.",
            tier=c.rule_tier,
            tools=[work],
            output_type=Answer,
            max_turns=c.turns + 2,
        )
        for c in CATEGORIES
    }


def _plan(world: World) -> Plan:
    return Plan(
        subtasks=tuple(
            Subtask(
                id=sid,
                agent=category.name,
                instructions=f"[{category.name}] {category.benchmark} task {sid}",
                arguments={"input": f"task {sid}"},
            )
            for sid, (category, _) in world.subtasks.items()
        )
    )


async def run_strategy(
    strategy: Strategy,
    world: World,
    *,
    concurrency: int = 256,
    stats: RoutingStats | None = None,
    calibration: World | None = None,
    calibrated: Calibration | None = None,
) -> StrategyResult:
    """Run the workload once under `strategy` through the real orchestrator.

    A `warmup` runs first on `calibration` (the calibration half; another seed's traffic
    when not given), sharing `stats` with the scored run; with `holdout`, it is measured
    on each tier instead (`holdout`), unless `calibrated` is given.
    """
    if strategy.holdout and calibrated is None:
        held = calibration or World.build(
            strategy.warmup, mix=world.mix, seed=world.seed + 1, recall=world.recall
        )
        calibrated = await holdout(held.head(strategy.warmup), concurrency=concurrency)
    if strategy.escalate == "shipped" and stats is None:
        stats = RoutingStats()
        if strategy.warmup and not strategy.holdout:
            earlier = calibration or World.build(
                strategy.warmup,
                mix=world.mix,
                seed=world.seed + 1,
                recall=world.recall,
                false_alarm=world.false_alarm,
            )
            await run_strategy(
                strategy, earlier.head(strategy.warmup), concurrency=concurrency, stats=stats
            )
    world.calls.clear()
    world.correct_answers.clear()
    world.verifier_cost.clear()
    catalog = default_catalog()
    models: dict[Tier, Model] = {t: SimModel(catalog.for_tier(t), world) for t in Tier}
    executors = _executors()
    router: Any
    policy: Any = None
    if strategy.value_factor is not None:
        evidence = Evidence(calibrated, stats)
        router = CalibratedRouter(evidence, value_factor=strategy.value_factor)
        policy = gain_aware_policy(evidence, value_factor=strategy.value_factor)
    elif strategy.holdout and strategy.router == "default":
        router = CalibratedRouter(Evidence(calibrated, stats), value_factor=1.0)
    elif strategy.router == "rules":
        router = _RuleRouter()
    elif strategy.router == "classifier":
        router = _ClassifierRouter()
    elif strategy.router == "oracle":
        router = OracleRouter(world)
    elif strategy.router == "calibrated":
        router = CalibratedRouter(Evidence(calibrated, stats), tolerance=0.01)
    elif strategy.router == "default":
        router = None
    else:
        router = FixedRouter(Tier(strategy.router))
    verifier = Agent(
        name="verifier",
        instructions="Check that the output does the task.",
        output_type=Verdict,
        max_repairs=0,
        max_turns=1,
    )
    check = AgentCheck(verifier, tier=Tier.NANO)
    makers: dict[str, Callable[[], Any]] = {
        "none": NoEscalation,
        "default": DefaultPolicy,
        "gain": GainAwarePolicy,
        "shipped": lambda: None,
        "observe": NoEscalation,
    }
    if policy is None:
        policy = makers[strategy.escalate]()
    orchestrator = Orchestrator(
        list(executors.values()),
        router=router,
        policy=policy,
        stats=stats,
        limits=Limits(concurrency=concurrency, max_decompose_depth=0),
        models=models,
        verify={name: check for name in executors} if strategy.escalate != "none" else None,
    )
    result = await orchestrator.run("simulated workload", plan=_plan(world), compose=False)
    succeeded = accepted_wrong = failed = attempts = escalations = 0
    attempt_cost = Decimal(0)
    kinds: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, tuple[bool, Decimal]] = {}
    for sid, record in result.subtasks.items():
        kind = world.subtasks[sid][0].name
        row = kinds.setdefault(kind, _kind_row())
        row["subtasks"] += 1
        attempts += len(record.attempts)
        escalations += max(0, len({a.tier for a in record.attempts}) - 1)
        spent = sum((a.cost for a in record.attempts), Decimal(0))
        attempt_cost += spent
        outcomes[sid] = (record.status.value == "succeeded", spent)
        previous: Tier | None = None
        for a in record.attempts:
            step = "first" if previous is None else "retry" if a.tier == previous else "escalation"
            row[f"{step}_usd"] += float(a.cost)
            row[f"{step}_attempts"] += 1
            previous = a.tier
        if record.status.value == "succeeded":
            if record.output.answer in world.correct_answers:
                succeeded += 1
                row["succeeded"] += 1
            else:
                accepted_wrong += 1
        else:
            failed += 1
    for kind, usd in world.verifier_cost.items():
        kinds.setdefault(kind, _kind_row())["verifier_usd"] += float(usd)
    sim_cost = sum((spec.cost(u) for spec, u in world.calls), Decimal(0))
    return StrategyResult(
        strategy=strategy.name,
        subtasks=len(world.subtasks),
        succeeded=succeeded,
        accepted_wrong=accepted_wrong,
        failed=failed,
        cost=result.cost,
        attempts=attempts,
        escalations=escalations,
        by_tier={t.value: str(v.cost) for t, v in result.by_tier.items()},
        sim_cost=sim_cost,
        attempt_cost=attempt_cost,
        outcomes=outcomes,
        by_category={name: kinds[name] for name in _BY_NAME if name in kinds},
    )


def _kind_row() -> dict[str, Any]:
    row: dict[str, Any] = {"subtasks": 0, "succeeded": 0, "verifier_usd": 0.0}
    for step in ("first", "escalation", "retry"):
        row[f"{step}_usd"] = 0.0
        row[f"{step}_attempts"] = 0
    return row


async def holdout(world: World, *, concurrency: int = 256) -> Calibration:
    """A simulated `tiered eval`: every subtask of `world` once on each tier, verifier
    on, no escalation; per agent and tier, the verifier's pass rate, dollars per case
    and, on the same cases, what each tier rescued of the tier below's failures."""
    passed: dict[Tier, dict[str, tuple[bool, Decimal]]] = {}
    for tier in STANDARD_TIERS:
        observed = await run_strategy(
            Strategy("holdout", tier.value, "observe"), world, concurrency=concurrency
        )
        passed[tier] = observed.outcomes
    catalog = default_catalog()
    names = {t: catalog.for_tier(t).name for t in STANDARD_TIERS}
    found = Calibration()
    for agent in _executors().values():
        sids = [sid for sid, (c, _) in world.subtasks.items() if c.name == agent.name]
        if not sids:
            continue
        tiers = {}
        for i, tier in enumerate(STANDARD_TIERS):
            ok = sum(passed[tier][sid][0] for sid in sids)
            spent = sum((passed[tier][sid][1] for sid in sids), Decimal(0))
            lost = [s for s in sids if i and not passed[STANDARD_TIERS[i - 1]][s][0]]
            tiers[tier.value] = TierCalibration(
                n=len(sids),
                successes=ok,
                detected_failures=len(sids) - ok,  # every failure is a flag the policy sees
                cost_per_case=spent / len(sids),
                model=names[tier],
                after_failures=len(lost),
                rescued=sum(passed[tier][s][0] for s in lost),
            )
        entry = AgentCalibration(
            agent=agent.name, models={t.value: n for t, n in names.items()}, tiers=tiers
        )
        found.put(agent_fingerprint(agent, names), entry)
    return found


async def run_mix(
    n: int,
    mix: str,
    *,
    seed: int = 7,
    recalls: Sequence[float] = (0.9,),
    factors: Sequence[float] = FRONTIER_FACTORS,
) -> dict[str, Any]:
    """Every strategy on the scored half of one mix (what is learned comes from the
    calibration half), the shipped default's `value_factor` frontier, the known-rates
    bound, and rules+escalation at other verifier recalls."""
    calibration, world = World.halves(n, mix=mix, seed=seed, recall=recalls[0])
    held = await holdout(calibration)
    rows = []
    for s in STRATEGIES:
        r = await run_strategy(s, world, calibration=calibration, calibrated=held)
        rows.append(r.as_dict())
    base = rows[0]
    oracle = next(row for row in rows if row["strategy"] == "oracle")

    def relative(row: dict[str, Any]) -> dict[str, Any]:
        row["cost_vs_flagship"] = row["cost_usd"] / base["cost_usd"]
        row["success_vs_flagship"] = row["success_rate"] / base["success_rate"]
        row["cost_vs_oracle"] = row["cost_usd"] / oracle["cost_usd"]
        return row

    rows = [relative(row) for row in rows]
    frontier = []
    for x in factors:
        point = Strategy(
            f"holdout + shipped default, value_factor {x:g}",
            "default",
            "shipped",
            holdout=True,
            value_factor=x,
        )
        r = await run_strategy(point, world, calibrated=held)
        frontier.append(relative(r.as_dict()) | {"value_factor": x})
    sensitivity = []
    rules = next(s for s in STRATEGIES if s.name == "rules+escalation")
    for recall in recalls[1:]:
        w = World.halves(n, mix=mix, seed=seed, recall=recall)[1]
        row = relative((await run_strategy(rules, w)).as_dict())
        row["recall"] = recall
        sensitivity.append(row)
    counts: dict[str, int] = {}
    for category, _ in world.subtasks.values():
        counts[category.name] = counts.get(category.name, 0) + 1
    return {
        "mix": mix,
        "shares": MIXES[mix],
        "counts": counts,
        "strategies": rows,
        "frontier": frontier,
        "bound": known_rates_bound(
            CATEGORIES, MIXES[mix], recall=recalls[0], false_alarm=world.false_alarm
        ),
        "sensitivity": sensitivity,
    }


async def run_routing(
    n: int, *, seed: int = 7, recalls: Sequence[float] = (0.9,), mixes: Sequence[str] = ("bulk",)
) -> dict[str, Any]:
    """`run_mix` for each mix, with the assumptions that produced the numbers."""
    categories = {
        c.name: {
            "benchmark": c.benchmark,
            "rates": {t.value: r for t, r in c.rates.items()},
            "flagship_published": c.published_flagship,
            "rule_tier": c.rule_tier.value,
            "classifier_tier": c.classifier_tier.value,
            "calls_per_attempt": c.turns,
            "tokens_per_call": [c.input_tokens, c.output_tokens],
        }
        for c in CATEGORIES
    }
    judges = World(seed=seed, subtasks={})
    return {
        "subtasks": n,
        "seed": seed,
        "recall": recalls[0],
        "false_alarm": judges.false_alarm,
        "classifier_accuracy": judges.classifier_accuracy,
        "classifier_unsure": judges.classifier_unsure,
        "verifier_tokens": list(VERIFIER_TOKENS),
        "classifier_tokens": list(CLASSIFIER_TOKENS),
        "categories": categories,
        "mixes": [await run_mix(n, mix, seed=seed, recalls=recalls) for mix in mixes],
    }


async def _table(n: int, mixes: Sequence[str]) -> None:
    for mix in mixes:
        found = await run_mix(n, mix)
        print(f"\n{mix} mix, {n:,} scored subtasks (and {n:,} to calibrate on)\n")
        print("strategy | success vs all-flagship | cost vs all-flagship | cost vs oracle")
        print("---|---|---|---")
        for r in found["strategies"] + found["frontier"]:
            print(
                f"{r['strategy']} | {r['success_vs_flagship']:.3f}x | "
                f"{r['cost_vs_flagship']:.3f}x | {r['cost_vs_oracle']:.2f}x"
            )
        best = found["bound"]["best"]
        print(f"known-rates bound at >= 99%: {best}")


if __name__ == "__main__":  # python -m bench.routing [N] [MIX,MIX]: the strategy table
    import sys

    import anyio

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    chosen = sys.argv[2].split(",") if len(sys.argv) > 2 else list(MIXES)
    anyio.run(_table, size, chosen)
