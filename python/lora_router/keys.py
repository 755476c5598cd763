"""Tenant API keys: the salted SHA-256 form stored in configs (``sha256:<salt>:<digest>``,
hex), made by ``lora-router keys hash``; the core checks keys against it
(rust/tenants/keys.rs). Plain keys from the environment or a file are hashed here at start,
so no plain key ever reaches the plan."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "sha256:"


def hash_key(key: str, salt: bytes | None = None) -> str:
    """The line to store in a tenant's ``api_keys``."""
    if not key:
        raise ValueError("the key is empty")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.sha256(salt + key.encode()).hexdigest()
    return f"{PREFIX}{salt.hex()}:{digest}"


def parse_hashed(value: str) -> tuple[str, str] | None:
    """(salt hex, digest hex) of a stored hash, or None if it is not one."""
    if not value.startswith(PREFIX):
        return None
    parts = value[len(PREFIX) :].split(":")
    if len(parts) != 2:
        return None
    salt, digest = parts
    try:
        bytes.fromhex(salt)
        bytes.fromhex(digest)
    except ValueError:
        return None
    if not salt or len(digest) != 64:
        return None
    return salt, digest


def key_id(tenant: str, digest_hex: str) -> str:
    """What logs and the audit log show for a key: its tenant and a short digest prefix."""
    return f"{tenant}/{digest_hex[:12]}"
