"""A real MCP classifier server for the tests, written with the SDK's server API and speaking
vLLM Semantic Router's protocol. Its answers depend on words in the text, so each test can ask
for the behaviour it checks:

- "stock" or "invest": finance (0.9); "vacation": travel (0.8); "symptom": medical (0.95);
- "think hard": travel with use_reasoning true; "bogus model": finance with model no-such-lora;
- "unsure": finance at confidence 0.2; "bad class": class 42; "slow": sleeps 3 s first;
- anything else: general (0.3, under the router's threshold).

An ``x-tenant-id`` header (passed by the router, since ``classify_text`` declares ``headers``)
maps to a model hint through the JSON object in $TENANT_ADAPTERS. Each classify call appends
the text to $MCP_CALLS_FILE and the server writes its pid to $MCP_PID_FILE, when set.

    python mcp_server.py              # stdio
    python mcp_server.py --http PORT  # streamable HTTP on 127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp.server.mcpserver import MCPServer

CATEGORIES = ["finance", "travel", "medical", "general"]
PROMPTS = {
    "finance": "You are a financial analyst.",
    "travel": "You are a travel agent.",
    "medical": "The MCP server's medical prompt.",
}

server = MCPServer("test-classifier", log_level="WARNING")


@server.tool()
def list_categories() -> str:
    return json.dumps(
        {
            "categories": CATEGORIES,
            "category_system_prompts": PROMPTS,
            "category_descriptions": {c: f"{c} questions" for c in CATEGORIES},
        }
    )


def answer(text: str) -> dict[str, object]:
    t = text.lower()
    if "bad class" in t:
        return {"class": 42, "confidence": 0.9}
    if "think hard" in t:
        return {"class": 1, "confidence": 0.9, "use_reasoning": True}
    if "bogus model" in t:
        return {"class": 0, "confidence": 0.9, "model": "no-such-lora"}
    if "unsure" in t:
        return {"class": 0, "confidence": 0.2}
    if "stock" in t or "invest" in t:
        return {"class": 0, "confidence": 0.9}
    if "vacation" in t:
        return {"class": 1, "confidence": 0.8}
    if "symptom" in t:
        return {"class": 2, "confidence": 0.95}
    return {"class": 3, "confidence": 0.3}


@server.tool()
async def classify_text(text: str, with_probabilities: bool = False, headers: dict[str, str] | None = None) -> str:
    if calls := os.environ.get("MCP_CALLS_FILE"):
        with open(calls, "a", encoding="utf-8") as f:
            f.write(json.dumps({"text": text, "headers": headers}) + "\n")
    if "slow" in text.lower():
        await asyncio.sleep(3)
    result = answer(text)
    tenant = (headers or {}).get("x-tenant-id")
    model = json.loads(os.environ.get("TENANT_ADAPTERS", "{}")).get(tenant) if tenant else None
    if model:
        result["model"] = model
    if with_probabilities and isinstance(result["class"], int) and result["class"] < len(CATEGORIES):
        result["probabilities"] = [
            result["confidence"] if i == result["class"] else 0.0 for i in range(len(CATEGORIES))
        ]
    return json.dumps(result)


if __name__ == "__main__":
    if pid_file := os.environ.get("MCP_PID_FILE"):
        with open(pid_file, "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
