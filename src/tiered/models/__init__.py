"""Models: the one seam to providers, and the test doubles that stand in for them.

`OpenAIModel` is imported on first use: the openai SDK takes 1–2 s to import, which a
run on the embedded models (no `OPENAI_API_KEY`) never needs.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from tiered.models._base import Model
from tiered.models._guard import allow_remote_requests
from tiered.models._ladder import Ladder
from tiered.models._local import LocalModel, LocalTiming, local_ladder
from tiered.models._pacing import PacedModel, RateLimits, pace_ladder
from tiered.models._retry import CircuitBreaker, RetryingModel
from tiered.models._scripted import ScriptedModel, ScriptStep, call
from tiered.models._select import models_from_env, parse_model_map
from tiered.models._weights import LocalWeights

if _TYPE_CHECKING:
    from tiered.models._openai import OpenAIModel

__all__ = (
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


def __getattr__(name: str) -> _Any:
    """`OpenAIModel`, imported with the openai SDK the first time it is asked for."""
    if name == "OpenAIModel":
        from tiered.models._openai import OpenAIModel

        return OpenAIModel
    raise AttributeError(f"module 'tiered.models' has no attribute {name!r}")
