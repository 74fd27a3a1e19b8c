"""The public surface, pinned: changing what `tiered` exports should be a conscious act."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import re
import types
from pathlib import Path
from typing import Any

import pytest

import tiered
import tiered.models

TIERED_ALL = (
    "FREE",
    "STANDARD_TIERS",
    "Action",
    "Agent",
    "AgentCheck",
    "AgentResult",
    "AgentStream",
    "AssistantMessage",
    "Attempt",
    "AuthenticationFailed",
    "BadModelResponse",
    "Budget",
    "BudgetExceeded",
    "CalibratedRouter",
    "Calibration",
    "Case",
    "Catalog",
    "Charge",
    "Check",
    "ClassifierRouter",
    "ComposeFinished",
    "ComposeStarted",
    "ContextTooLong",
    "ControlFlow",
    "DefaultPolicy",
    "Escalate",
    "EscalationDecision",
    "EscalationPolicy",
    "EscalationRequested",
    "Estimate",
    "EvalReport",
    "Evaluation",
    "EventStream",
    "Evidence",
    "Failure",
    "FailureKind",
    "Journal",
    "Ladder",
    "Ledger",
    "Limits",
    "LocalModelUnavailable",
    "MaxTurnsExceeded",
    "Message",
    "Model",
    "ModelDelta",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelRetry",
    "ModelSpec",
    "ModelStreamed",
    "ModelTimeout",
    "ModelUnavailable",
    "Orchestrator",
    "OutputInvalid",
    "OutputSchema",
    "OutputTruncated",
    "Plan",
    "PlanCreated",
    "PlanEstimate",
    "PlanInvalid",
    "PlanOverBudget",
    "Planner",
    "PolicyState",
    "PriceBreak",
    "Pricing",
    "ProviderError",
    "ProviderUnreachable",
    "RateLimitInfo",
    "RateLimited",
    "RateLimits",
    "ReasoningItem",
    "Refused",
    "Reservation",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "RoutingStats",
    "Rule",
    "RuleRouter",
    "RunContext",
    "RunError",
    "RunEvent",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "RunStatus",
    "ScriptedModel",
    "Stakes",
    "Subtask",
    "SubtaskEscalated",
    "SubtaskEstimate",
    "SubtaskFailed",
    "SubtaskFinished",
    "SubtaskResult",
    "SubtaskRouted",
    "SubtaskSkipped",
    "SubtaskStarted",
    "SubtaskStatus",
    "SystemMessage",
    "TextDelta",
    "Tier",
    "TierTotals",
    "TieredError",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCalled",
    "ToolDefinition",
    "ToolObserver",
    "ToolResultMessage",
    "ToolReturned",
    "UnknownModel",
    "Usage",
    "UserError",
    "UserMessage",
    "WeightsInvalid",
    "Workflow",
    "check_numbers",
    "check_plan",
    "default_catalog",
    "evaluate",
    "gain_aware_policy",
    "gain_aware_rules",
    "load_workflow",
    "numbers_from_outputs",
    "redact_secrets",
    "should_escalate",
    "states_amount",
    "tool",
)

MODELS_ALL = (
    "CircuitBreaker",
    "Ladder",
    "LocalModel",
    "LocalTiming",
    "LocalWeights",
    "Model",
    "OpenAIModel",
    "PacedModel",
    "RateLimits",
    "RetryingModel",
    "ScriptStep",
    "ScriptedModel",
    "allow_remote_requests",
    "call",
    "local_ladder",
    "models_from_env",
    "pace_ladder",
    "parse_model_map",
)

NOT_KEYWORD_ONLY = {
    "tiered.Catalog": "a mapping filled by register(); its fields are private",
    "tiered.models.Ladder": "a read-only mapping of tier to model, not a record",
}
"""Public dataclasses allowed positional construction, and why."""


def _public(module: types.ModuleType) -> list[tuple[str, Any]]:
    return [(f"{module.__name__}.{n}", getattr(module, n)) for n in module.__all__]


PUBLIC = _public(tiered) + _public(tiered.models)


def test_tiered_all_is_pinned() -> None:
    assert isinstance(tiered.__all__, tuple)
    assert list(tiered.__all__) == list(TIERED_ALL)


def test_models_all_is_pinned() -> None:
    assert isinstance(tiered.models.__all__, tuple)
    assert list(tiered.models.__all__) == list(MODELS_ALL)


@pytest.mark.parametrize("module", [tiered, tiered.models], ids=lambda m: m.__name__)
def test_all_is_sorted_without_duplicates(module: types.ModuleType) -> None:
    names: tuple[str, ...] = module.__all__
    assert len(set(names)) == len(names)
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical
    groups = [
        [n for n in names if n.isupper()],
        [n for n in names if not n.isupper() and n[0].isupper()],
        [n for n in names if n[0].islower()],
    ]
    assert list(names) == [n for group in groups for n in sorted(group)]


@pytest.mark.parametrize("module", [tiered, tiered.models], ids=lambda m: m.__name__)
def test_no_public_name_outside_all(module: types.ModuleType) -> None:
    stray = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    } - set(module.__all__)
    assert not stray, f"public names missing from {module.__name__}.__all__: {sorted(stray)}"


@pytest.mark.parametrize("module", [tiered, tiered.models], ids=lambda m: m.__name__)
def test_star_import(module: types.ModuleType) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {module.__name__} import *", namespace)
    assert set(module.__all__) <= set(namespace)


DOCUMENTED = [(n, o) for n, o in PUBLIC if inspect.isclass(o) or inspect.isfunction(o)]


@pytest.mark.parametrize(("name", "obj"), DOCUMENTED, ids=[n for n, _ in DOCUMENTED])
def test_public_classes_and_functions_have_docstrings(name: str, obj: Any) -> None:
    assert (obj.__doc__ or "").strip(), f"{name} needs a docstring"


def _dataclasses() -> list[Any]:
    params = []
    for name, obj in PUBLIC:
        if not (inspect.isclass(obj) and dataclasses.is_dataclass(obj)):
            continue
        if name in NOT_KEYWORD_ONLY:
            continue
        params.append(pytest.param(name, obj, id=name))
    return params


@pytest.mark.parametrize(("name", "cls"), _dataclasses())
def test_public_dataclasses_are_keyword_only(name: str, cls: type[Any]) -> None:
    init_params = [p for p in inspect.signature(cls).parameters.values() if p.name != "self"]
    positional = [p.name for p in init_params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert not positional, f"{name} takes {positional} positionally: use kw_only=True"


def test_usage_rejects_positional_construction() -> None:
    with pytest.raises(TypeError):
        tiered.Usage(1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        tiered.ModelSpec("m", tiered.Tier.NANO, 1, 1)  # type: ignore[call-arg]


def test_version_matches_metadata() -> None:
    assert tiered.__version__ == importlib.metadata.version("tiered")


def test_errors_share_one_root() -> None:
    errors = [obj for _, obj in PUBLIC if inspect.isclass(obj) and issubclass(obj, Exception)]
    assert errors
    for err in errors:
        assert issubclass(err, tiered.TieredError), err


def test_readme_quick_start_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's code sample is the public API as users first meet it: keep it true."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    samples = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert samples, "README.md has no python sample"
    exec(compile(samples[0], "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert "order_id='A17' amount_cents=4200 reason='5 days late: full refund'" in out
    assert any(re.fullmatch(r"3 \d+ 0", line) for line in out), out
    exec(compile(samples[1], "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out == ["succeeded 2", "t0: refund (urgent); t1: shipping", "True"], out
