"""The adapter registry (registry.py), tenants added at run time (tenants.py), and the admin
API that drives both (admin.py)."""

from .admin import AdminAPI
from .registry import AdapterRecord, Registry, RegistryError, Version
from .tenants import TenantStore

__all__ = ["AdapterRecord", "AdminAPI", "Registry", "RegistryError", "TenantStore", "Version"]
