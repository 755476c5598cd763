"""Routing by meaning: the embedding classifier (shipped multilingual-e5-small, and the tiny
fixture for the mechanics), the domain classifier, signal order, truncation, and failures
that must never fail a request."""

import json

import httpx
import pytest
from lora_router import ConfigError, Router
from support import (
    FIXTURE_ENCODER,
    base_config,
    chat,
    domain_config,
    domain_rows,
    last_upstream,
    start_router,
    train_classifier,
    wait_until,
    write_config,
)

PARAPHRASES = [
    # Not in the examples, no keyword rules: only meaning can route these.
    ("My borrow checker keeps complaining about a mutable reference", "technical-lora"),
    ("how do i undo a commit i already pushed", "technical-lora"),
    ("I've had a sore throat and swollen glands for a week", "medical-lora"),
    ("My landlord won't return my deposit, what are my options?", "legal-lora"),
    ("Should I put my savings into an index fund or pay off my car loan?", "finance-lora"),
    ("What is the integral of x squared times e to the x?", "math-lora"),
    ("Any tips for a weekend trip to the mountains?", ""),
    ("我的程序一运行就报空指针异常", "technical-lora"),
    ("最近总是失眠，晚上睡不着怎么办", "medical-lora"),
    ("公司拖欠工资，我该怎么维权？", "legal-lora"),
    ("每个月工资应该怎么分配储蓄和投资", "finance-lora"),
    ("这个三角形的面积怎么求", "math-lora"),
    ("周末去哪里爬山比较好", ""),
]


@pytest.fixture(scope="module")
def domain_sim(tmp_path_factory):
    from support import make_adapters, start_sim

    names = [f"{lab}-lora" for lab in ("finance", "legal", "math", "medical", "technical")]
    p = start_sim(make_adapters(tmp_path_factory.mktemp("ad"), names), max_loras=5)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def domain_router(domain_sim, tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("dom") / "c.yaml", domain_config([("vllm-0", domain_sim.port)]))
    p = start_router(path)
    yield p
    p.stop()


@pytest.mark.parametrize(("text", "adapter"), PARAPHRASES)
def test_paraphrases_reach_the_right_adapter(domain_router, domain_sim, text, adapter):
    r = httpx.post(f"{domain_router.url}/v1/chat/completions", json=chat(text=text))
    assert r.status_code == 200, r.text
    assert r.headers["x-lora-router-classifier"] == "embedding"
    assert r.headers["x-lora-router-adapter"] == adapter, r.headers["x-lora-router-category"]
    assert 0 < float(r.headers["x-lora-router-confidence"]) <= 1
    assert last_upstream(domain_sim)["model"] == (adapter or "tiny-base")
    assert "x-lora-router-truncated" not in r.headers


def test_classify_endpoint_agrees_with_the_data_plane(domain_router):
    for text, _ in PARAPHRASES[:4]:
        decided = httpx.post(f"{domain_router.url}/v1/classify", json={"text": text}).json()
        routed = httpx.post(f"{domain_router.url}/v1/chat/completions", json=chat(text=text))
        assert decided["category"] == routed.headers["x-lora-router-category"]
        assert decided["adapter"] == (routed.headers["x-lora-router-adapter"] or None)
        embedding = decided["signals"][0]
        assert embedding["signal"] == "embedding" and embedding["tokens"] > 2 and embedding["truncated"] is False
        assert len(embedding["scores"]) == 3


def test_held_out_accuracy_is_high_in_both_languages(domain_router):
    """The held-out half of the domain set through the live endpoint (see benches/accuracy.py
    for the full figures); a floor well under the benchmark, so this checks behaviour."""
    for lang in ("en", "zh"):
        rows = domain_rows("test", lang)
        hits = sum(
            httpx.post(f"{domain_router.url}/v1/classify", json={"text": r["text"]}).json()["category"] == r["label"]
            for r in rows
        )
        assert hits / len(rows) >= 0.85, (lang, hits / len(rows))


def test_long_input_is_truncated_and_says_so(domain_sim, tmp_path):
    cfg = domain_config(
        [("vllm-0", domain_sim.port)],
        inference={"max_tokens": 32, "truncation": "head"},
        audit_log={"enabled": True, "path": "audit.jsonl"},
    )
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        text = "My unit tests pass locally but fail in CI. " + "Here is the log line. " * 12
        r = httpx.post(f"{router.url}/v1/chat/completions", json=chat(text=text))
        assert r.status_code == 200
        assert r.headers["x-lora-router-truncated"] == "true"
        d = httpx.post(f"{router.url}/v1/classify", json={"text": text}).json()
        assert d["truncated"] is True
        s = d["signals"][0]
        assert s["tokens"] == 32 and s["truncated"] is True and s["original_tokens"] > 32
        # Far over the budget, the text is cut by characters before tokenizing: still reported.
        s = httpx.post(f"{router.url}/v1/classify", json={"text": text * 50}).json()["signals"][0]
        assert s["tokens"] == 32 and s["truncated"] is True and "original_tokens" not in s
        wait_until(lambda: (tmp_path / "audit.jsonl").exists() and (tmp_path / "audit.jsonl").read_text())
        rec = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])
        assert rec["truncated"] is True and rec["signals"][0]["truncated"] is True
        metrics = httpx.get(f"{router.url}/metrics").text
        assert "lora_router_truncated_inputs_total 1" in metrics
    finally:
        router.stop()


def fixture_config(**overrides):
    cfg = base_config([("e", 9)], **overrides)
    cfg["categories"][0]["examples"] = ["python code bug", "rust compile error", "java function test"]
    cfg["categories"][2]["examples"] = ["contract law court", "lease bank loan", "court lease contract"]
    cfg["classifier"] = {"embedding_model": {"model": str(FIXTURE_ENCODER)}}
    return cfg


def test_signal_order_and_skipped_signals():
    r = Router(fixture_config())
    d = r.classify("python and a contract")
    assert d["classifier"] == "keyword"
    assert [s["signal"] for s in d["signals"]] == ["keyword", "embedding"]
    assert d["signals"][1]["skipped"] is True
    # Embedding first: it decides.
    r = Router(fixture_config(routing={"signal_order": ["embedding", "keyword"]}))
    d = r.classify("python code bug")
    assert d["classifier"] == "embedding"
    assert d["signals"][1]["skipped"] is True
    # Every signal's answer recorded when asked.
    r = Router(fixture_config(routing={"evaluate_all_signals": True}))
    d = r.classify("python code bug")
    assert d["classifier"] == "keyword"
    assert "skipped" not in d["signals"][1] and d["signals"][1]["scores"]
    # A signal left out of the order does not run.
    r = Router(fixture_config(routing={"signal_order": ["keyword"]}))
    assert [s["signal"] for s in r.classify("hello")["signals"]] == ["keyword"]


def test_embedding_config_errors(tmp_path):
    cfg = fixture_config()
    cfg["classifier"] = {"embedding_model": {"model": "no-such-model"}}
    with pytest.raises(ConfigError) as e:
        Router(cfg)
    assert e.value.problems[0].path == "classifier.embedding_model.model"
    # A model directory without calibration needs a temperature.
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("model.onnx", "tokenizer.json"):
        (bare / f).write_bytes((FIXTURE_ENCODER / f).read_bytes())
    cfg["classifier"] = {"embedding_model": {"model": str(bare)}}
    with pytest.raises(ConfigError) as e:
        Router(cfg)
    assert e.value.problems[0].path == "classifier.embedding_model.temperature"
    cfg["classifier"] = {"embedding_model": {"model": str(bare), "temperature": 0.05}}
    assert Router(cfg).classify("python code bug")["classifier"] in ("keyword", "embedding")


def test_one_category_with_text_turns_the_embedding_classifier_off():
    cfg = base_config([("e", 9)])
    cfg["categories"][0]["description"] = "Programming"
    for c in cfg["categories"][1:]:
        c.pop("description", None)
    r = Router(cfg)
    assert [s["type"] for s in r.plan["signals"]] == ["keyword"]
    assert any("needs two categories" in w for w in r.loaded.warnings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A domain classifier on the shipped encoder, trained on the domain set's training half."""
    rows = [{"text": r["text"], "label": r["label"]} for r in domain_rows("train")]
    return train_classifier(tmp_path_factory.mktemp("clf") / "domain-classifier", rows, encoder="multilingual-e5-small")


def test_trained_classifier_layout(trained):
    for f in ("model.onnx", "tokenizer.json", "category_mapping.json", "config.json", "training.json"):
        assert (trained / f).is_file(), f
    mapping = json.loads((trained / "category_mapping.json").read_text())
    assert mapping["idx_to_category"]["0"] == "finance" and mapping["category_to_idx"]["technical"] == 5
    report = json.loads((trained / "training.json").read_text())
    assert report["examples"] == 120 and report["train_accuracy"] > 0.95
    assert report["seconds_total"] < 60


def test_domain_classifier_routes(domain_sim, trained, tmp_path):
    cfg = domain_config([("vllm-0", domain_sim.port)])
    for c in cfg["categories"]:
        c["examples"] = []
    cfg["classifier"] = {"category_model": {"model_id": str(trained), "threshold": 0.5}}
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        hits = 0
        for text, adapter in PARAPHRASES:
            r = httpx.post(f"{router.url}/v1/chat/completions", json=chat(text=text))
            assert r.status_code == 200
            hits += r.headers["x-lora-router-adapter"] == adapter and r.headers["x-lora-router-classifier"] == "domain"
        assert hits >= len(PARAPHRASES) - 2
        d = httpx.post(f"{router.url}/v1/classify", json={"text": PARAPHRASES[0][0]}).json()
        s = d["signals"][0]
        assert (
            s["signal"] == "domain" and s["scores"][0]["label"] == "technical" and s["scores"][0]["probability"] >= 0.5
        )
    finally:
        router.stop()


def test_failing_signal_abstains_and_the_request_still_routes(domain_sim, trained, tmp_path):
    """A mapping that names more labels than the model has outputs: the domain signal errors
    on every request, abstains, is counted, and the request routes on the other signals."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("model.onnx", "tokenizer.json"):
        (broken / f).write_bytes((trained / f).read_bytes())
    labels = [*json.loads((trained / "category_mapping.json").read_text())["idx_to_category"].values(), "extra"]
    (broken / "category_mapping.json").write_text(json.dumps({"idx_to_category": dict(enumerate(labels))}))
    cfg = domain_config([("vllm-0", domain_sim.port)])
    cfg["classifier"] = {"category_model": {"model_id": str(broken)}}
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        r = httpx.post(f"{router.url}/v1/chat/completions", json=chat(text=PARAPHRASES[0][0]))
        assert r.status_code == 200
        assert r.headers["x-lora-router-classifier"] == "embedding"
        d = httpx.post(f"{router.url}/v1/classify", json={"text": PARAPHRASES[0][0]}).json()
        assert "7 labels" in d["signals"][0]["error"]
        assert 'lora_router_signal_errors_total{signal="domain"} 1' in httpx.get(f"{router.url}/metrics").text
    finally:
        router.stop()
