"""Models: the one seam to providers, and the test doubles that stand in for them."""

from tiered.models._base import Model
from tiered.models._guard import allow_remote_requests
from tiered.models._openai import OpenAIModel
from tiered.models._retry import RetryingModel
from tiered.models._scripted import ScriptedModel, ScriptStep, call
from tiered.models._select import Ladder, models_from_env, parse_model_map

__all__ = (
    "Ladder",
    "Model",
    "OpenAIModel",
    "RetryingModel",
    "ScriptStep",
    "ScriptedModel",
    "allow_remote_requests",
    "call",
    "models_from_env",
    "parse_model_map",
)
