"""Configuration: YAML in Semantic Router's v0.1 format plus lora-router's sections,
validated (``load``), checked across fields (``checks``) and compiled to the native plan
(``plan``)."""

from .load import ConfigError, LoadedConfig, Problem, load_config, validate
from .models import RouterConfig
from .plan import build_plan

__all__ = ["ConfigError", "LoadedConfig", "Problem", "RouterConfig", "build_plan", "load_config", "validate"]
