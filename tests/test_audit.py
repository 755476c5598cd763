"""The audit log: one JSON line per request with the decision and the outcome."""

import json

import httpx
from support import base_config, chat, start_router, wait_until, write_config


def test_audit_log_records_each_request(sim, tmp_path):
    cfg = base_config([("v", sim.port)], audit_log={"enabled": True, "path": "audit.jsonl"})
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    log = tmp_path / "audit.jsonl"
    try:
        httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="python and a contract"))
        httpx.post(f"{router.url}/v1/chat/completions", json=chat("nope"))
        httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="hi", stream=True))
        wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 3)
    finally:
        router.stop()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    ok, missing, streamed = lines
    for rec in lines:
        for k in ["ts", "request_id", "status", "latency_ms", "outcome"]:
            assert k in rec
    assert ok["status"] == 200 and ok["outcome"] == "completed"
    assert ok["classifier"] == "keyword"
    assert ok["category"] == "technical"
    assert ok["adapter"] == "technical-lora"
    assert ok["model"] == "technical-lora"
    assert ok["backend"] == "vllm-0"
    assert ok["signals"][0]["matched"] == [
        {"category": "technical", "keywords": ["python"]},
        {"category": "legal", "keywords": ["contract"]},
    ]
    assert ok["routing_us"] >= 0 and ok["latency_ms"] > 0
    assert missing["status"] == 404 and missing["error"] == "model_not_found"
    assert streamed["stream"] is True and streamed["category"] == "general" and streamed["adapter"] is None
    assert len({r["request_id"] for r in lines}) == 3
