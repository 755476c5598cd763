"""The adapter registry (registry.py) and the admin API that drives it (admin.py)."""

from .admin import AdminAPI
from .registry import AdapterRecord, Registry, RegistryError, Version

__all__ = ["AdapterRecord", "AdminAPI", "Registry", "RegistryError", "Version"]
