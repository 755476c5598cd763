"""lora-router: an OpenAI-compatible gateway that sends each request to the right vLLM
LoRA adapter on the right replica."""

from ._native import PlanError
from ._native import __version__ as __version__
from .classifier import Classification, ClassificationRequest
from .config import ConfigError, load_config
from .router import Router

__all__ = ["Classification", "ClassificationRequest", "ConfigError", "PlanError", "Router", "load_config"]
