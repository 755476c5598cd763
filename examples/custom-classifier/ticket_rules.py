"""A custom lora-router classifier: a shop's ticket rules, as a class the router builds once
from the ``settings`` in its config.

Rules match regular expressions (an order number, a returns request) to categories; tenants
on the enterprise plan (by the x-tenant-id header) get answers with reasoning on. Text no
rule matches is left to the router's other signals (``None`` abstains).
"""

from __future__ import annotations

import re
from typing import Any

from lora_router import Classification, ClassificationRequest


class TicketRules:
    def __init__(self, settings: dict[str, Any]):
        self.rules = [(re.compile(pattern, re.IGNORECASE), category) for category, pattern in settings["rules"].items()]
        self.enterprise = set(settings.get("enterprise_tenants", []))

    def classify(self, request: ClassificationRequest) -> Classification | None:
        for pattern, category in self.rules:
            if pattern.search(request.text):
                enterprise = request.headers.get("x-tenant-id") in self.enterprise
                return Classification(category, confidence=0.95, use_reasoning=enterprise or None)
        return None
