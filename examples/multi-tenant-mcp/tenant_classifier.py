"""An MCP classifier server for a multi-tenant SaaS: every tenant has its own support adapter,
and the server, which owns the tenant directory, tells lora-router which one to use.

It speaks vLLM Semantic Router's MCP classifier protocol, plus lora-router's extension:

- ``list_categories`` lists the categories with their system prompts; lora-router adds the
  ones its config lacks.
- ``classify_text(text, with_probabilities, headers)`` picks a category from the text and,
  from the tenant id in the ``x-tenant-id`` request header (lora-router passes the request's
  headers, without credentials, to a tool that declares a ``headers`` argument), returns the
  tenant's adapter as ``model``. lora-router serves that adapter if its config knows it.

The tenant directory is the JSON object in $TENANT_ADAPTERS (``{"tenant id": "adapter"}``);
a real deployment would read a database here.

    python tenant_classifier.py                      # stdio, as lora-router starts it
    python tenant_classifier.py --http --port 8090   # streamable HTTP on /mcp
"""

from __future__ import annotations

import argparse
import json
import os

from mcp.server.mcpserver import MCPServer

TENANT_HEADER = "x-tenant-id"

# name: (description, system prompt, words that signal it)
CATEGORIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "billing": (
        "Invoices, payments, refunds and plans",
        "You are the billing assistant. Be precise about amounts and dates.",
        ("invoice", "refund", "charge", "payment", "billing", "subscription", "发票", "退款", "付款"),
    ),
    "incident": (
        "Outages and errors in production",
        "You are the on-call support engineer. Ask for timestamps and error messages.",
        ("outage", "down", "error 500", "not loading", "crash", "宕机", "故障"),
    ),
    "support": (
        "How to use the product",
        "You are the product support assistant.",
        (),
    ),
}
NAMES = list(CATEGORIES)

server = MCPServer("tenant-classifier", log_level="WARNING")


def tenant_adapters() -> dict[str, str]:
    return json.loads(os.environ.get("TENANT_ADAPTERS", "{}"))


@server.tool()
def list_categories() -> str:
    """The categories this server classifies into, with their system prompts."""
    return json.dumps(
        {
            "categories": NAMES,
            "category_system_prompts": {name: prompt for name, (_, prompt, _) in CATEGORIES.items()},
            "category_descriptions": {name: description for name, (description, _, _) in CATEGORIES.items()},
        }
    )


@server.tool()
def classify_text(text: str, with_probabilities: bool = False, headers: dict[str, str] | None = None) -> str:
    """Classifies a support request into a category, and picks the tenant's adapter."""
    lowered = text.lower()
    hits = [sum(word in lowered for word in words) for _, _, words in CATEGORIES.values()]
    best = max(range(len(NAMES)), key=lambda i: hits[i])
    if hits[best] == 0:
        best = NAMES.index("support")
    confidence = 0.9 if hits[best] else 0.6
    answer: dict[str, object] = {"class": best, "confidence": confidence}
    if with_probabilities:
        rest = (1.0 - confidence) / (len(NAMES) - 1)
        answer["probabilities"] = [confidence if i == best else rest for i in range(len(NAMES))]
    adapter = tenant_adapters().get((headers or {}).get(TENANT_HEADER, ""))
    if adapter:
        answer["model"] = adapter
    # Incidents need the model to think before it answers.
    answer["use_reasoning"] = NAMES[best] == "incident"
    return json.dumps(answer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    a = parser.parse_args()
    if a.http:
        server.run("streamable-http", host=a.host, port=a.port)
    else:
        server.run()
