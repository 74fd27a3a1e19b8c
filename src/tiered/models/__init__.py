"""Models: the one seam to providers, and the test doubles that stand in for them."""

from tiered.models._base import Model
from tiered.models._retry import RetryingModel
from tiered.models._scripted import ScriptedModel, ScriptStep, call

__all__ = ("Model", "RetryingModel", "ScriptStep", "ScriptedModel", "call")
