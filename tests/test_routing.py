"""Routing through `lora-router serve` in front of `lora-router sim`: categories to
adapters, explicit names and aliases, rewrites, decision headers."""

import httpx
import pytest
from support import base_config, chat, last_upstream, start_router, start_sim, upstream_count, write_config

DECISION_HEADERS = [
    "x-lora-router-category",
    "x-lora-router-adapter",
    "x-lora-router-model",
    "x-lora-router-backend",
    "x-lora-router-classifier",
    "x-lora-router-confidence",
    "x-lora-router-routing-us",
]


@pytest.mark.parametrize(
    ("text", "category", "adapter"),
    [
        ("Why does my Rust code not compile?", "technical", "technical-lora"),
        ("What are the symptoms of flu?", "medical", "medical-lora"),
        ("Review this contract for me", "legal", "legal-lora"),
        ("请帮我审查这份合同", "legal", "legal-lora"),
        ("What is a good name for a cat?", "general", ""),
    ],
)
def test_category_reaches_its_adapter(router, sim, text, category, adapter):
    r = httpx.post(f"{router.url}/v1/chat/completions", json=chat(text=text))
    assert r.status_code == 200, r.text
    for h in DECISION_HEADERS:
        assert h in r.headers, h
    assert r.headers["x-lora-router-category"] == category
    assert r.headers["x-lora-router-adapter"] == adapter
    sent = adapter or "tiny-base"
    assert r.headers["x-lora-router-model"] == sent
    assert r.headers["x-lora-router-backend"] == "vllm-0"
    assert r.headers["x-lora-router-classifier"] == ("keyword" if adapter else "default")
    assert int(r.headers["x-lora-router-routing-us"]) >= 0
    # The simulator served the adapter: its answer names it, and it received model=<adapter>.
    assert r.json()["model"] == sent
    assert last_upstream(sim)["model"] == sent


@pytest.mark.parametrize("model", ["MoM", "auto", "mom", None])
def test_virtual_models_route(router, model):
    body = chat(text="python question")
    if model is None:
        del body["model"]
    else:
        body["model"] = model
    r = httpx.post(f"{router.url}/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["x-lora-router-adapter"] == "technical-lora"


@pytest.mark.parametrize(
    ("body_model", "extra", "expected"),
    [
        ("medical-lora", {}, "medical-lora"),
        ("tiny-base", {}, "tiny-base"),
        ("tiny-base:legal-lora", {}, "legal-lora"),
        ("tiny-base@legal-lora", {}, "legal-lora"),
        ("tiny-base", {"adapter_id": "medical-lora"}, "medical-lora"),
    ],
)
def test_explicit_models_and_aliases_pass_through(router, sim, body_model, extra, expected):
    # A technical question, to show an explicit model is not re-routed.
    r = httpx.post(f"{router.url}/v1/chat/completions", json=chat(body_model, "python question", **extra))
    assert r.status_code == 200, r.text
    assert r.headers["x-lora-router-classifier"] == "explicit"
    assert r.headers["x-lora-router-model"] == expected
    up = last_upstream(sim)
    assert up["model"] == expected
    assert "adapter_id" not in up
    # No system prompt or reasoning is forced onto an explicit request.
    assert up["messages"] == [{"role": "user", "content": "python question"}]
    assert "chat_template_kwargs" not in up


def test_other_fields_pass_through_untouched(router, sim):
    body = {
        "temperature": 0.3,
        "model": "MoM",
        "messages": [{"role": "user", "content": "hello there"}],
        "top_p": 0.9,
        "vllm_xargs": {"custom": [1, 2, {"x": None}]},
        "stop": ["\n\n"],
        "max_tokens": 3,
    }
    r = httpx.post(f"{router.url}/v1/chat/completions", json=body)
    assert r.status_code == 200
    up = last_upstream(sim)
    expected = dict(body, model="tiny-base", chat_template_kwargs={"enable_thinking": False})
    assert up == expected
    assert list(up)[: len(body)] == list(body)


def test_system_prompt_replace_and_insert(router, sim):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "rust help"}]
    httpx.post(f"{router.url}/v1/chat/completions", json={"model": "MoM", "messages": msgs})
    up = last_upstream(sim)["messages"]
    assert up[0] == {"role": "system", "content": "You are a senior software engineer."}
    assert up[1:] == msgs[1:]

    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "flu symptoms"}]
    httpx.post(f"{router.url}/v1/chat/completions", json={"model": "MoM", "messages": msgs})
    assert last_upstream(sim)["messages"][0]["content"] == "You are a doctor.\n\nBe brief."

    httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="flu symptoms"))
    up = last_upstream(sim)["messages"]
    assert up[0] == {"role": "system", "content": "You are a doctor."}
    assert up[1] == {"role": "user", "content": "flu symptoms"}


def test_reasoning_by_family(router, sim):
    httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="rust help", chat_template_kwargs={"x": 1}))
    assert last_upstream(sim)["chat_template_kwargs"] == {"x": 1, "enable_thinking": True}
    httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="contract help"))
    assert last_upstream(sim)["chat_template_kwargs"] == {"enable_thinking": False}
    # medical has no use_reasoning: nothing is written.
    httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="symptoms"))
    assert "chat_template_kwargs" not in last_upstream(sim)


def test_reasoning_effort_family(sim, tmp_path):
    cfg = base_config([("vllm-0", sim.port)])
    cfg["model_config"]["tiny-base"]["reasoning_family"] = "gpt-oss"
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="rust help", reasoning_effort="low"))
        up = last_upstream(sim)
        assert up["reasoning_effort"] == "medium"
        assert "chat_template_kwargs" not in up
        httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="contract", reasoning_effort="low"))
        assert "reasoning_effort" not in last_upstream(sim)
    finally:
        router.stop()


@pytest.mark.parametrize(
    ("policy", "category"), [("last_user", "general"), ("all_user", "medical"), ("conversation", "legal")]
)
def test_classify_messages_policy(sim, tmp_path, policy, category):
    cfg = base_config([("vllm-0", sim.port)], routing={"classify_messages": policy})
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        msgs = [
            {"role": "system", "content": "You review each contract."},
            {"role": "user", "content": "I have a symptom."},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "thanks, bye"},
        ]
        r = httpx.post(f"{router.url}/v1/chat/completions", json={"model": "MoM", "messages": msgs})
        # "conversation" sees the system message too: legal (score 0.95) beats medical (0.9).
        assert r.headers["x-lora-router-category"] == category
    finally:
        router.stop()


def test_completions_route(router, sim):
    r = httpx.post(
        f"{router.url}/v1/completions", json={"model": "MoM", "prompt": "def compile(rust):", "max_tokens": 3}
    )
    assert r.status_code == 200
    assert r.json()["object"] == "text_completion"
    assert r.headers["x-lora-router-adapter"] == "technical-lora"
    assert last_upstream(sim) == {"model": "technical-lora", "prompt": "def compile(rust):", "max_tokens": 3}


def test_models_list(router):
    r = httpx.get(f"{router.url}/v1/models")
    data = r.json()["data"]
    by_id = {m["id"]: m for m in data}
    assert data[0]["id"] == "MoM"
    assert by_id["tiny-base"]["parent"] is None
    for a in ["technical-lora", "medical-lora", "legal-lora"]:
        assert by_id[a]["parent"] == "tiny-base"
        assert by_id[a]["object"] == "model"
        assert by_id[a]["root"] == a


def test_classify_endpoint_matches_data_plane(router, sim):
    n = upstream_count(sim)
    r = httpx.post(f"{router.url}/v1/classify", json={"text": "my python code does not compile"})
    assert r.status_code == 200
    d = r.json()
    assert d["category"] == "technical"
    assert d["adapter"] == "technical-lora"
    assert d["model"] == "technical-lora"
    assert d["classifier"] == "keyword"
    assert d["signals"][0]["matched"] == [{"category": "technical", "keywords": ["python", "compile"]}]
    r = httpx.post(f"{router.url}/v1/classify", json={"messages": [{"role": "user", "content": "合同纠纷"}]})
    assert r.json()["category"] == "legal"
    assert upstream_count(sim) == n  # nothing was forwarded


def test_weights_and_preferred_endpoints(adapters, tmp_path):
    sims = [start_sim(adapters) for _ in range(3)]
    try:
        cfg = base_config([(f"vllm-{i}", s.port) for i, s in enumerate(sims)])
        cfg["vllm_endpoints"][0]["weight"] = 3
        cfg["vllm_endpoints"][1]["weight"] = 1
        cfg["model_config"]["tiny-base"]["preferred_endpoints"] = ["vllm-0", "vllm-1"]
        router = start_router(write_config(tmp_path / "c.yaml", cfg))
        try:
            counts = {"vllm-0": 0, "vllm-1": 0, "vllm-2": 0}
            with httpx.Client() as client:
                for _ in range(400):
                    r = client.post(f"{router.url}/v1/chat/completions", json=chat("tiny-base"))
                    counts[r.headers["x-lora-router-backend"]] += 1
            assert counts["vllm-2"] == 0
            assert 0.65 < counts["vllm-0"] / 400 < 0.85, counts
        finally:
            router.stop()
    finally:
        for s in sims:
            s.stop()


def test_connect_error_is_retried_on_another_endpoint(sim, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()
    cfg = base_config([("dead", dead_port), ("live", sim.port)])
    cfg["vllm_endpoints"][0]["weight"] = 1000  # nearly always picked first
    cfg["server"] = {"health_check": {"interval_s": 60}}
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        r = httpx.post(f"{router.url}/v1/chat/completions", json=chat())
        assert r.status_code == 200
        assert r.headers["x-lora-router-backend"] == "vllm-1"
    finally:
        router.stop()


def test_sighup_reloads_the_config(sim, tmp_path):
    import signal

    from support import wait_until

    path = write_config(tmp_path / "c.yaml", base_config([("vllm-0", sim.port)]))
    router = start_router(path)
    try:
        r = httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="what about this contract?"))
        assert r.headers["x-lora-router-adapter"] == "legal-lora"
        cfg = base_config([("vllm-0", sim.port)])
        cfg["keyword_rules"][2]["keywords"] = ["tort"]
        write_config(path, cfg)
        router.p.send_signal(signal.SIGHUP)

        def switched():
            r = httpx.post(f"{router.url}/v1/classify", json={"text": "what about this contract?"})
            return r.json()["category"] == "general"

        wait_until(switched)
        # A broken config is refused and the running plan stays.
        path.write_text("vllm_endpoints: []\n")
        router.p.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload of" in router.log())
        r = httpx.post(f"{router.url}/v1/classify", json={"text": "a tort case"})
        assert r.json()["category"] == "legal"
    finally:
        router.stop()
