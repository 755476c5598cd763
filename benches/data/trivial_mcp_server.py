"""The cheapest MCP classifier server, for benches/router_python.rs: what it costs is the price
of a tool call over stdio."""

import json

from mcp.server.mcpserver import MCPServer

server = MCPServer("trivial-classifier", log_level="WARNING")


@server.tool()
def list_categories() -> str:
    return json.dumps({"categories": ["technical", "general"], "category_system_prompts": {}})


@server.tool()
def classify_text(text: str, with_probabilities: bool = False) -> str:
    return json.dumps({"class": 0, "confidence": 1.0})


if __name__ == "__main__":
    server.run()
