"""Custom classifiers for tests/test_custom.py, one per behaviour the router must handle."""

from __future__ import annotations

import asyncio
import json
import time

from lora_router import Classification, ClassificationRequest


def by_word(request: ClassificationRequest) -> Classification | None:
    """Sync: "lawyer" is legal, anything else abstains."""
    if "lawyer" in request.text:
        return Classification("legal", confidence=0.9)
    return None


async def by_word_async(request: ClassificationRequest) -> Classification | None:
    await asyncio.sleep(0)
    if "doctor" in request.text:
        return Classification("medical", confidence=0.8)
    return None


class Settings:
    """A class: built once with the config's settings."""

    def __init__(self, settings: dict):
        self.category = settings["category"]
        self.built = time.time()

    def classify(self, request: ClassificationRequest) -> Classification:
        return Classification(self.category, confidence=1.0)


class NoSettings:
    async def classify(self, request: ClassificationRequest) -> Classification:
        return Classification("technical", confidence=1.0)


class Callable:
    """An object with __call__ is a plain function too."""

    def __call__(self, request: ClassificationRequest) -> Classification:
        return Classification("medical", confidence=1.0)


instance = Settings({"category": "legal"})


def echo(request: ClassificationRequest) -> Classification:
    """Everything it was given, in the system prompt, so tests can read it upstream."""
    seen = {
        "text": request.text,
        "messages": request.messages,
        "headers": dict(request.headers),
        "tenant": request.tenant,
        "settings": dict(request.settings),
    }
    return Classification("general", confidence=1.0, system_prompt=json.dumps(seen, sort_keys=True))


def hints(request: ClassificationRequest) -> Classification:
    """Asks for an adapter (from the text), reasoning on, and its own system prompt."""
    words = request.text.split()
    return Classification(
        "general", confidence=0.95, adapter=words[-1], use_reasoning=True, system_prompt="Answer as a pirate."
    )


def raises(request: ClassificationRequest) -> Classification:
    raise KeyError("tenant-db is unreachable")


async def raises_async(request: ClassificationRequest) -> Classification:
    raise RuntimeError("async failure")


def slow(request: ClassificationRequest) -> Classification:
    time.sleep(1.0)
    return Classification("legal", confidence=1.0)


async def slow_async(request: ClassificationRequest) -> Classification:
    await asyncio.sleep(1.0)
    return Classification("legal", confidence=1.0)


def wrong_type(request: ClassificationRequest) -> dict:
    return {"category": "legal"}


def unknown_category(request: ClassificationRequest) -> Classification:
    return Classification("astrology", confidence=1.0)


def low_confidence(request: ClassificationRequest) -> Classification:
    return Classification("legal", confidence=0.3)


not_callable = 42
