"""The examples in examples/ work as their READMEs say: each config routes through
`lora-router serve` in front of `lora-router sim`, with the decision headers naming its
classifier."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from support import ROOT, Proc, chat, decision, last_upstream, lora_router, start_router, write_config

EXAMPLES = ROOT / "examples"


def sim_for(example: Path, base: str) -> Proc:
    adapters = sorted((example / "adapters").iterdir())
    return Proc(
        lora_router(
            "sim",
            "--port",
            "0",
            "--served-model-name",
            base,
            "--max-loras",
            str(len(adapters)),
            "--lora-modules",
            *(f"{a.name}={a}" for a in adapters),
        )
    )


def config_on(example: Path, sim: Proc) -> dict:
    """The example's config, pointed at the simulator's port."""
    cfg = yaml.safe_load((example / "config.yaml").read_text())
    cfg["vllm_endpoints"][0]["port"] = sim.port
    return cfg


@pytest.fixture
def tenant_example(tmp_path):
    example = EXAMPLES / "multi-tenant-mcp"
    sim = sim_for(example, "saas-base")
    cfg = config_on(example, sim)
    # The config runs its server from the config's directory; this copy lives elsewhere.
    cfg["classifier"]["mcp_category_model"]["cwd"] = str(example)
    router = start_router(write_config(tmp_path / "config.yaml", cfg))
    yield router, sim
    router.stop()
    sim.stop()


def test_multi_tenant_mcp_example(tenant_example):
    router, sim = tenant_example
    url = f"{router.url}/v1/chat/completions"
    r = httpx.post(url, json=chat(text="How do I export my data?"), headers={"x-tenant-id": "acme"}, timeout=30)
    d = decision(r)
    assert (d["classifier"], d["category"], d["adapter"]) == ("mcp", "support", "acme-lora")
    assert r.json()["model"] == "acme-lora"
    r = httpx.post(url, json=chat(text="The dashboard is down, error 500"), headers={"x-tenant-id": "globex"})
    d = decision(r)
    assert (d["category"], d["adapter"]) == ("incident", "globex-lora")
    up = last_upstream(sim)
    assert up["chat_template_kwargs"] == {"enable_thinking": True}
    assert up["messages"][0]["content"].startswith("You are the on-call support engineer.")
    # billing is in both: the config's prompt wins; the tenant still gets its adapter.
    r = httpx.post(url, json=chat(text="我想申请退款"), headers={"x-tenant-id": "acme"})
    assert (decision(r)["category"], decision(r)["adapter"]) == ("billing", "acme-lora")
    assert last_upstream(sim)["messages"][0]["content"].startswith("You handle billing questions.")
    # An unknown tenant gets the base model.
    r = httpx.post(url, json=chat(text="How do I export my data?"), headers={"x-tenant-id": "initech"})
    assert (decision(r)["classifier"], decision(r)["model"]) == ("mcp", "saas-base")


def test_custom_classifier_example(tmp_path):
    example = EXAMPLES / "custom-classifier"
    sim = sim_for(example, "shop-base")
    router = start_router(
        write_config(tmp_path / "config.yaml", config_on(example, sim)), env={"PYTHONPATH": str(example)}
    )
    try:
        url = f"{router.url}/v1/chat/completions"
        r = httpx.post(url, json=chat(text="Where is my order #123456?"), headers={"x-tenant-id": "acme"})
        d = decision(r)
        assert (d["classifier"], d["category"], d["adapter"]) == ("custom:ticket-rules", "orders", "orders-lora")
        assert last_upstream(sim)["chat_template_kwargs"] == {"enable_thinking": True}
        r = httpx.post(url, json=chat(text="我想退货"))
        assert (decision(r)["category"], decision(r)["adapter"]) == ("returns", "returns-lora")
        r = httpx.post(url, json=chat(text="Do you sell gift cards?"))
        assert (decision(r)["classifier"], decision(r)["model"]) == ("default", "shop-base")
    finally:
        router.stop()
        sim.stop()
