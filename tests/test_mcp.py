"""The MCP classifier against a real MCP server (tests/mcp_server.py, written with the SDK's
server API), over stdio and streamable HTTP, through `lora-router serve` in front of
`lora-router sim`: categories the server lists, routing by its answers, its hints, timeouts,
a server that dies and comes back, and one that is down at start."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from support import (
    MCPHTTPServer,
    chat,
    decision,
    free_port,
    last_upstream,
    mcp_config,
    metric,
    start_router,
    stdio_mcp,
    wait_until,
    write_config,
)

TENANTS = json.dumps({"acme": "legal-lora", "globex": "no-such-lora"})


def post(router, text: str, headers: dict[str, str] | None = None, **fields) -> httpx.Response:
    r = httpx.post(f"{router.url}/v1/chat/completions", json=chat(text=text, **fields), headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r


def classify(router, text: str) -> dict:
    return httpx.post(f"{router.url}/v1/classify", json={"text": text}, timeout=30).json()


@pytest.fixture(scope="module")
def stdio_router(sim, tmp_path_factory):
    d = tmp_path_factory.mktemp("mcp-stdio")
    env = {"TENANT_ADAPTERS": TENANTS, "MCP_CALLS_FILE": str(d / "calls.jsonl"), "MCP_PID_FILE": str(d / "pid")}
    path = write_config(d / "config.yaml", mcp_config(sim.port, stdio_mcp(env=env)))
    router = start_router(path)
    router.dir = d
    yield router
    router.stop()


def test_categories_from_the_server_are_added_with_their_prompts(stdio_router, sim):
    r = post(stdio_router, "Should I invest in index funds or single stocks?")
    d = decision(r)
    assert (d["classifier"], d["category"], d["confidence"]) == ("mcp", "finance", "0.900")
    # finance is the server's: it routes to the default model with the server's system prompt.
    assert d["model"] == "tiny-base" and d["adapter"] == ""
    assert last_upstream(sim)["messages"][0] == {"role": "system", "content": "You are a financial analyst."}
    r = post(stdio_router, "Where should I go on vacation in May?")
    assert (decision(r)["category"], decision(r)["classifier"]) == ("travel", "mcp")


def test_the_config_wins_for_categories_it_also_defines(stdio_router, sim):
    r = post(stdio_router, "I have a strange symptom on my skin")
    d = decision(r)
    assert (d["classifier"], d["category"], d["adapter"]) == ("mcp", "medical", "medical-lora")
    # The config's prompt (inserted before the user's messages), not the server's.
    assert last_upstream(sim)["messages"][0] == {"role": "system", "content": "You are a doctor."}


def test_tenant_header_selects_the_tenants_adapter(stdio_router, sim):
    text = "How should I invest my savings?"
    plain = decision(post(stdio_router, text))
    assert plain["adapter"] == ""
    r = post(stdio_router, text, headers={"X-Tenant-Id": "acme", "Authorization": "Bearer sk-secret"})
    d = decision(r)
    assert (d["category"], d["adapter"], d["model"]) == ("finance", "legal-lora", "legal-lora")
    assert last_upstream(sim)["model"] == "legal-lora"
    # The server saw the tenant header and never the credentials.
    calls = [json.loads(line) for line in (stdio_router.dir / "calls.jsonl").read_text().splitlines()]
    seen = next(c["headers"] for c in reversed(calls) if c["headers"].get("x-tenant-id") == "acme")
    assert "authorization" not in seen and "cookie" not in seen


def test_unknown_model_hint_is_ignored_and_logged(stdio_router):
    for text, headers in [("a bogus model please", None), ("invest for tenant globex", {"x-tenant-id": "globex"})]:
        r = post(stdio_router, text, headers=headers)
        d = decision(r)
        assert (d["classifier"], d["category"], d["model"]) == ("mcp", "finance", "tiny-base")
    c = classify(stdio_router, "a bogus model please")
    assert c["hints"] == ["model no-such-lora: ignored, not a model or adapter this router serves"]
    wait_until(lambda: "mcp suggested model no-such-lora: ignored" in stdio_router.log())


def test_use_reasoning_hint_is_honoured(stdio_router, sim):
    r = post(stdio_router, "think hard about my vacation plan")
    assert decision(r)["category"] == "travel"
    assert last_upstream(sim)["chat_template_kwargs"] == {"enable_thinking": True}
    c = classify(stdio_router, "think hard about my vacation plan")
    assert c["use_reasoning"] is True and "use_reasoning true: applied" in c["hints"]


@pytest.mark.parametrize("text", ["I am unsure about money", "hello there"])
def test_low_confidence_falls_through_to_the_default(stdio_router, text):
    d = decision(post(stdio_router, text))
    assert (d["classifier"], d["category"]) == ("default", "general")


def test_a_bad_answer_abstains_and_is_counted(stdio_router):
    before = metric(stdio_router.url, "lora_router_signal_errors_total") if _has_errors(stdio_router) else 0.0
    d = decision(post(stdio_router, "this gives a bad class"))
    assert (d["classifier"], d["category"]) == ("default", "general")
    assert metric(stdio_router.url, "lora_router_signal_errors_total") == before + 1
    assert "outside the 4 listed categories" in classify(stdio_router, "a bad class")["signals"][0]["error"]


def _has_errors(router) -> bool:
    return "lora_router_signal_errors_total{" in httpx.get(f"{router.url}/metrics").text


def test_a_slow_server_gives_the_fallback_within_the_timeout(stdio_router):
    started = time.monotonic()
    d = decision(post(stdio_router, "a slow question about stocks"))
    took = time.monotonic() - started
    assert (d["classifier"], d["category"]) == ("default", "general")
    assert took < 2.9, took  # timeout_seconds is 2; the server takes 3
    assert "took longer than 2 s" in classify(stdio_router, "slow again")["signals"][0]["error"]
    # The connection survives a timeout.
    assert decision(post(stdio_router, "stocks"))["classifier"] == "mcp"


def test_health_reports_the_classifier(stdio_router):
    assert httpx.get(f"{stdio_router.url}/health").json()["classifiers"] == {"mcp": "connected"}


def test_a_killed_stdio_server_is_restarted(stdio_router):
    pid = int((stdio_router.dir / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    pid_file = stdio_router.dir / "pid"
    seen: list[str] = []

    def restarted() -> bool:
        # Requests never fail meanwhile: they route on the other signals.
        seen.append(decision(post(stdio_router, "invest in stocks"))["classifier"])
        return int(pid_file.read_text()) != pid

    wait_until(restarted, timeout=20)
    assert "default" in seen
    wait_until(lambda: decision(post(stdio_router, "invest in stocks"))["classifier"] == "mcp", timeout=20)
    assert "disconnected" in stdio_router.log(), stdio_router.log()


def test_cache_answers_per_text_and_headers(sim, tmp_path):
    calls = tmp_path / "calls.jsonl"
    cfg = mcp_config(sim.port, stdio_mcp(env={"MCP_CALLS_FILE": str(calls)}, cache_ttl_seconds=60))
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        for _ in range(3):
            assert decision(post(router, "stocks and bonds"))["classifier"] == "mcp"
        post(router, "stocks and bonds", headers={"x-tenant-id": "acme"})
        post(router, "more stocks")
        texts = [json.loads(line)["text"] for line in calls.read_text().splitlines()]
        assert texts.count("stocks and bonds") == 2  # once plain, once for acme
        assert texts.count("more stocks") == 1
    finally:
        router.stop()


def test_streamable_http_down_at_start_then_up_then_restarted(sim, tmp_path):
    port = free_port()
    cfg = mcp_config(
        sim.port,
        {"transport_type": "streamable-http", "url": f"http://127.0.0.1:{port}/mcp", "reconnect_seconds": 0.2},
    )
    cfg["classifier"]["mcp_category_model"]["timeout_seconds"] = 1
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    server = None
    try:
        # Down at start: the router serves, on the other signals.
        assert "not connected yet" in router.log()
        d = decision(post(router, "invest in stocks"))
        assert (d["classifier"], d["category"]) == ("default", "general")
        assert httpx.get(f"{router.url}/health").json()["classifiers"]["mcp"] == "disconnected"
        assert classify(router, "stocks")["signals"][0]["error"].startswith("Unavailable")

        server = MCPHTTPServer(port, env={"TENANT_ADAPTERS": TENANTS})
        wait_until(lambda: decision(post(router, "invest in stocks"))["classifier"] == "mcp", timeout=20)
        d = decision(post(router, "invest in stocks", headers={"x-tenant-id": "acme"}))
        assert (d["category"], d["adapter"]) == ("finance", "legal-lora")

        server.stop()
        d = decision(post(router, "invest in stocks"))
        assert d["classifier"] == "default"
        server = MCPHTTPServer(port, env={"TENANT_ADAPTERS": TENANTS})
        wait_until(lambda: decision(post(router, "invest in stocks"))["classifier"] == "mcp", timeout=20)
        assert httpx.get(f"{router.url}/health").json()["classifiers"]["mcp"] == "connected"
    finally:
        if server is not None:
            server.stop()
        router.stop()


def test_offline_router_uses_the_mcp_server(sim, tmp_path):
    from lora_router import Router

    cfg = mcp_config(sim.port, stdio_mcp(env={"TENANT_ADAPTERS": TENANTS}))
    with Router(write_config(tmp_path / "c.yaml", cfg)) as router:
        assert router.wait_ready(15)
        d = router.classify("invest in stocks", headers={"X-Tenant-Id": "acme"})
        assert (d["classifier"], d["category"], d["adapter"]) == ("mcp", "finance", "legal-lora")
        assert router.classify(messages=[{"role": "user", "content": "vacation ideas"}])["category"] == "travel"


@pytest.mark.parametrize(
    ("mcp", "key"),
    [
        ({"transport_type": "stdio"}, "classifier.mcp_category_model.command"),
        ({"transport_type": "streamable-http"}, "classifier.mcp_category_model.url"),
        ({"transport_type": "websocket", "command": "x"}, "classifier.mcp_category_model.transport_type"),
        ({"command": "python", "cwd": "no/such/dir"}, "classifier.mcp_category_model.cwd"),
    ],
)
def test_config_errors_name_the_key(tmp_path, mcp, key):
    from lora_router import ConfigError, load_config

    path = write_config(tmp_path / "c.yaml", mcp_config(9, mcp))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert key in str(e.value) and str(path) in str(e.value)


def test_no_classify_tool_keeps_reconnecting(sim, tmp_path):
    cfg = mcp_config(sim.port, stdio_mcp(tool_name="no_such_tool", reconnect_seconds=0.2))
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        d = decision(post(router, "stocks"))
        assert d["classifier"] == "default"
        assert "no classify tool" in router.log()
    finally:
        router.stop()


def test_mcp_is_optional_in_the_signal_order(sim, tmp_path):
    cfg = mcp_config(sim.port, stdio_mcp())
    cfg["routing"] = {"signal_order": ["keyword", "embedding"]}
    path = write_config(tmp_path / "c.yaml", cfg)
    from lora_router import load_config

    assert any("'mcp' is not in routing.signal_order" in w for w in load_config(Path(path)).warnings)
