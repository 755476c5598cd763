"""Custom Python classifiers: sync and async functions, objects and classes named in the config
as module:attribute, what they receive, what they may suggest, and every way they can fail
(raising, slow, wrong answers, not importable). Offline through `lora_router.Router`, and
through `lora-router serve` in front of `lora-router sim`."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from lora_router import Classification, ClassificationRequest, ConfigError, Router
from support import base_config, chat, decision, last_upstream, metric, start_router, wait_until, write_config

TESTS = str(Path(__file__).parent)


def config(*custom: dict, keyword: bool = False, port: int = 9, **overrides) -> dict:
    cfg = base_config([("vllm-0", port)], **overrides)
    if not keyword:
        cfg["keyword_rules"] = []
    cfg["classifier"] = {"custom": list(custom)}
    return cfg


def custom(name: str, entrypoint: str, **fields) -> dict:
    return {"name": name, "entrypoint": f"classifiers:{entrypoint}", **fields}


@pytest.mark.parametrize(
    ("entrypoint", "text", "category"),
    [
        ("by_word", "I need a lawyer", "legal"),
        ("by_word_async", "call a doctor", "medical"),
        ("Settings", "anything", "legal"),  # built with its settings (category: legal)
        ("NoSettings", "anything", "technical"),
        ("Callable", "anything", "medical"),
        ("instance", "anything", "legal"),
    ],
)
def test_every_kind_of_classifier_decides(entrypoint, text, category):
    cfg = config(custom("mine", entrypoint, settings={"category": "legal"}))
    with Router(cfg) as router:
        d = router.classify(text)
    assert (d["classifier"], d["category"], d["confidence"] > 0.5) == ("custom:mine", category, True)


@pytest.mark.parametrize("entrypoint", ["by_word", "by_word_async"])
def test_none_abstains_and_the_next_signal_decides(entrypoint):
    cfg = config(custom("first", entrypoint), custom("second", "Settings", settings={"category": "technical"}))
    with Router(cfg) as router:
        d = router.classify("nothing to see")
    assert (d["classifier"], d["category"]) == ("custom:second", "technical")
    assert [s["signal"] for s in d["signals"]] == ["custom:first", "custom:second"]


def test_the_signal_order_holds():
    cfg = config(custom("mine", "Settings", settings={"category": "legal"}), keyword=True)
    with Router(cfg) as router:
        # Keyword rules come first by default...
        assert router.classify("python question")["classifier"] == "keyword"
    cfg["routing"] = {"signal_order": ["custom", "keyword"]}
    with Router(cfg) as router:
        # ... unless the order says otherwise.
        assert router.classify("python question")["classifier"] == "custom:mine"


def test_the_request_it_receives():
    cfg = config(custom("echo", "echo", settings={"dsn": "postgres://db/tenants", "n": 3}))
    headers = {"X-Tenant-Id": "acme", "Authorization": "Bearer sk-1", "Cookie": "s=1", "X-Api-Key": "k"}
    with Router(cfg) as router:
        d = router.classify(
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}],
            headers=headers,
            tenant="acme",
        )
    seen = json.loads(d["system_prompt"])
    assert seen == {
        "text": "hi there",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}],
        "headers": {"x-tenant-id": "acme"},
        "tenant": "acme",
        "settings": {"dsn": "postgres://db/tenants", "n": 3},
    }


def test_hints_known_adapter_applies_unknown_is_ignored():
    with Router(config(custom("hints", "hints"))) as router:
        d = router.classify("use legal-lora")
        assert (d["category"], d["adapter"], d["use_reasoning"]) == ("general", "legal-lora", True)
        assert d["system_prompt"] == "Answer as a pirate."
        # The alias spelling a client might use works as a hint too.
        assert router.classify("use tiny-base@medical-lora")["adapter"] == "medical-lora"
        d = router.classify("use someone-elses-lora")
        assert (d["category"], d["adapter"], d["model"]) == ("general", None, "tiny-base")
        assert d["hints"][0] == "model someone-elses-lora: ignored, not a model or adapter this router serves"


@pytest.mark.parametrize(
    ("entrypoint", "error"),
    [
        ("raises", "KeyError: 'tenant-db is unreachable'"),
        ("raises_async", "RuntimeError: async failure"),
        ("slow", "timed out after 100 ms"),
        ("slow_async", "timed out after 100 ms"),
        ("wrong_type", "returned dict, expected Classification or None"),
        ("unknown_category", "answered with unknown category 'astrology'"),
    ],
)
def test_failures_abstain_with_the_reason(entrypoint, error):
    cfg = config(custom("bad", entrypoint, timeout_ms=100), custom("good", "by_word"))
    with Router(cfg) as router:
        started = time.monotonic()
        d = router.classify("ask a lawyer")
        took = time.monotonic() - started
    assert (d["classifier"], d["category"]) == ("custom:good", "legal")
    assert error in d["signals"][0]["error"]
    assert took < 0.9, took


def test_below_threshold_does_not_decide():
    with Router(config(custom("low", "low_confidence", threshold=0.5))) as router:
        d = router.classify("x")
    assert (d["classifier"], d["category"]) == ("default", "general")
    assert d["signals"][0]["category"] == "legal" and d["signals"][0]["decided"] is False
    with Router(config(custom("low", "low_confidence", threshold=0.2))) as router:
        assert router.classify("x")["classifier"] == "custom:low"


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("classifiers:nope", "classifiers has no attribute nope"),
        ("no_such_module_here:f", "cannot import no_such_module_here: ModuleNotFoundError"),
        ("classifiers", "is not of the form module:attribute"),
        ("classifiers:not_callable", "neither a function nor an object with a classify method"),
    ],
)
def test_an_unusable_entrypoint_is_a_config_error(tmp_path, entrypoint, message):
    path = write_config(tmp_path / "c.yaml", config({"name": "x", "entrypoint": entrypoint}))
    with pytest.raises(ConfigError) as e:
        Router(path)
    text = str(e.value)
    assert str(path) in text and "classifier.custom[0].entrypoint" in text and message in text


def test_duplicate_names_are_a_config_error(tmp_path):
    path = write_config(tmp_path / "c.yaml", config(custom("x", "by_word"), custom("x", "by_word_async")))
    with pytest.raises(ConfigError, match=r"classifier.custom\[1\].name"):
        Router(path)


def test_serve_exits_2_on_an_import_error(tmp_path):
    import subprocess
    import sys

    path = write_config(tmp_path / "c.yaml", config({"name": "x", "entrypoint": "no_such_module_here:f"}))
    r = subprocess.run(
        [sys.executable, "-m", "lora_router.cli", "serve", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "classifier.custom[0].entrypoint" in r.stderr and "Traceback" not in r.stderr


def test_the_public_types():
    c = Classification("legal")
    assert (c.confidence, c.adapter, c.model, c.system_prompt, c.use_reasoning) == (1.0, None, None, None, None)
    with pytest.raises(AttributeError):
        c.category = "x"  # frozen
    r = ClassificationRequest("t", '[{"role": "user", "content": "t"}]', {"a": "b"}, "acme", {"k": 1})
    assert (r.text, r.messages[0]["content"], r.headers["a"], r.tenant, r.settings["k"]) == ("t", "t", "b", "acme", 1)


def test_a_classifier_beside_the_config_is_found(tmp_path):
    (tmp_path / "beside_the_config.py").write_text(
        "from lora_router import Classification\n"
        "def classify(request):\n"
        "    return Classification('medical', confidence=0.99)\n"
    )
    path = write_config(tmp_path / "c.yaml", config({"name": "near", "entrypoint": "beside_the_config:classify"}))
    with Router(path) as router:
        assert router.classify("x")["classifier"] == "custom:near"


# --- through serve -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def custom_router(sim, tmp_path_factory):
    cfg = config(
        custom("words", "by_word"),
        custom("words-async", "by_word_async"),
        custom("flaky", "raises"),
        custom("hints", "hints", threshold=0.99),  # never decides, but runs
        port=sim.port,
        audit_log={"enabled": True, "path": "audit.jsonl"},
    )
    cfg["classifier"]["custom"].insert(0, custom("slow", "slow", timeout_ms=200))
    path = write_config(tmp_path_factory.mktemp("custom") / "c.yaml", cfg)
    router = start_router(path, env={"PYTHONPATH": TESTS})
    router.audit = path.parent / "audit.jsonl"
    yield router
    router.stop()


def test_serve_routes_by_custom_classifiers(custom_router, sim):
    r = httpx.post(f"{custom_router.url}/v1/chat/completions", json=chat(text="I need a lawyer"), timeout=10)
    assert r.status_code == 200
    d = decision(r)
    assert (d["classifier"], d["category"], d["adapter"]) == ("custom:words", "legal", "legal-lora")
    assert last_upstream(sim)["model"] == "legal-lora"
    r = httpx.post(f"{custom_router.url}/v1/chat/completions", json=chat(text="call a doctor", stream=True), timeout=10)
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    assert decision(r)["classifier"] == "custom:words-async"


def test_serve_failures_are_counted_logged_and_audited(custom_router):
    r = httpx.post(f"{custom_router.url}/v1/chat/completions", json=chat(text="nothing matches"), timeout=10)
    assert r.status_code == 200
    assert (decision(r)["classifier"], decision(r)["category"]) == ("default", "general")
    text = httpx.get(f"{custom_router.url}/metrics").text
    assert 'lora_router_signal_errors_total{signal="custom:flaky"}' in text
    assert 'lora_router_signal_errors_total{signal="custom:slow"}' in text
    assert metric(custom_router.url, "lora_router_signal_errors_total") >= 2
    wait_until(lambda: "signal custom:flaky failed, it abstained: KeyError" in custom_router.log())
    wait_until(lambda: "signal custom:slow failed, it abstained: timed out after 200 ms" in custom_router.log())

    def audited() -> bool:
        if not custom_router.audit.exists():
            return False
        rows = [json.loads(x) for x in custom_router.audit.read_text().splitlines()]
        return any(s.get("error", "").startswith("KeyError") for row in rows for s in row.get("signals", []))

    wait_until(audited)


def test_serve_under_concurrency_with_a_slow_classifier(custom_router):
    """32 requests at once, each waiting out the slow classifier's 200 ms timeout (its calls
    hold blocking threads, never the proxy loop), then routed by the next classifier."""
    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        results = list(
            pool.map(
                lambda i: httpx.post(
                    f"{custom_router.url}/v1/chat/completions", json=chat(text=f"lawyer {i}"), timeout=30
                ),
                range(32),
            )
        )
    took = time.monotonic() - started
    assert all(r.status_code == 200 and r.headers["x-lora-router-classifier"] == "custom:words" for r in results)
    assert took < 10, took


def test_reload_makes_changed_classifiers_anew(tmp_path):
    path = write_config(tmp_path / "c.yaml", config(custom("words", "by_word")))
    with Router(path) as router:
        assert router.classify("I need a lawyer")["classifier"] == "custom:words"
        # The classifier's entrypoint changed: the new one serves after the reload.
        write_config(path, config(custom("words", "by_word_async")))
        report = router.reload(path)
        assert "classifier" in report["applied"] and report["restart_required"] == []
        assert router.classify("I need a doctor")["classifier"] == "custom:words"
        assert router.classify("I need a lawyer")["classifier"] == "default"
        # An entrypoint that cannot be imported is refused, naming the key; the running one stays.
        write_config(path, config(custom("words", "no_such_function")))
        with pytest.raises(ConfigError, match=r"classifier.custom\[0\].entrypoint"):
            router.reload(path)
        assert router.classify("I need a doctor")["classifier"] == "custom:words"
        # Other changes reload, and the classifier keeps working.
        cfg = config(custom("words", "by_word_async"))
        cfg["categories"][1]["system_prompt"] = "You are a GP."
        write_config(path, cfg)
        assert router.reload(path)["applied"] == ["categories"]
        d = router.classify("I need a doctor")
        assert (d["classifier"], d["system_prompt"]) == ("custom:words", "You are a GP.")
