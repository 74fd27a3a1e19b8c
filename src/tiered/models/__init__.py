"""Models: the one seam to providers, and the test doubles that stand in for them."""

from tiered.models._base import Model
from tiered.models._guard import allow_remote_requests
from tiered.models._ladder import Ladder
from tiered.models._local import LocalModel, local_ladder
from tiered.models._openai import OpenAIModel
from tiered.models._retry import RetryingModel
from tiered.models._scripted import ScriptedModel, ScriptStep, call
from tiered.models._select import models_from_env, parse_model_map
from tiered.models._weights import LocalWeights

__all__ = (
    "Ladder",
    "LocalModel",
    "LocalWeights",
    "Model",
    "OpenAIModel",
    "RetryingModel",
    "ScriptStep",
    "ScriptedModel",
    "allow_remote_requests",
    "call",
    "local_ladder",
    "models_from_env",
    "parse_model_map",
)
