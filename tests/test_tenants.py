"""Tenants behind `lora-router serve` in front of simulators: keys, entitlement (a tenant
cannot reach, list or probe another's adapters), sticky A/B splits with run-time weights,
shadow traffic, quotas in the process and shared through a real Redis, and the audit log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from support import (
    chat,
    free_port,
    key_hash,
    lora_router,
    make_adapters,
    start_router,
    start_sim,
    wait_until,
    write_config,
)

ADMIN = "admin-secret"
ACME_KEY = "sk-acme-0123456789"
BETA_KEY = "sk-beta-9876543210"
ADAPTERS = ["acme-finance-lora", "acme-finance-lora-v2", "acme-candidate", "beta-support-lora", "legal-lora"]


def tenants_config(port: int, root: Path, **overrides) -> dict:
    cfg = {
        "vllm_endpoints": [{"name": "sim", "address": "127.0.0.1", "port": port}],
        "model_config": {"tiny-base": {"loras": [{"name": n} for n in ADAPTERS]}},
        "default_model": "tiny-base",
        "categories": [
            {
                "name": "finance",
                "model_scores": [
                    {"model": "tiny-base", "lora_name": "acme-finance-lora", "score": 1.0},
                    {"model": "tiny-base", "lora_name": "beta-support-lora", "score": 0.5},
                ],
            },
            {"name": "legal", "model_scores": [{"model": "tiny-base", "lora_name": "legal-lora", "score": 1.0}]},
            {"name": "general", "model_scores": [{"model": "tiny-base", "score": 0.5}]},
        ],
        "keyword_rules": [
            {"category": "finance", "operator": "OR", "keywords": ["invoice"]},
            {"category": "legal", "operator": "OR", "keywords": ["contract"]},
        ],
        "tenants": [
            {
                "name": "acme",
                "api_keys": [key_hash(ACME_KEY)],
                "adapters": ["acme-finance-lora", "acme-finance-lora-v2", "acme-candidate"],
                "default_adapter": "acme-finance-lora",
                "aliases": {"my-model": "acme-finance-lora"},
            },
            {
                "name": "beta",
                "api_key_env": "BETA_KEY",
                "adapters": ["beta-support-lora"],
                "default_adapter": "beta-support-lora",
                "aliases": {"my-model": "beta-support-lora"},
                "intent_routing": False,
            },
        ],
        "experiments": [
            {
                "name": "finance-v2",
                "tenant": "acme",
                "sticky_key": "user",
                "arms": [
                    {"adapter": "acme-finance-lora", "weight": 0.7},
                    {"adapter": "acme-finance-lora-v2", "weight": 0.3},
                ],
                "shadow": {"adapter": "acme-candidate", "share": 1.0},
            }
        ],
        "audit_log": {"enabled": True, "path": str(root / "audit.jsonl")},
    }
    cfg.update(overrides)
    return cfg


ENV = {"LORA_ROUTER_ADMIN_KEY": ADMIN, "BETA_KEY": BETA_KEY}


def send(url: str, key: str | None, model: str = "MoM", path: str = "/v1/chat/completions", **fields):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}{path}", json=chat(model=model, **fields), headers=headers, timeout=30)


class Setup:
    def __init__(self, root: Path):
        self.root = root
        self.adapters = make_adapters(root, ADAPTERS)
        self.sim = start_sim(self.adapters)
        self.config = write_config(root / "config.yaml", tenants_config(self.sim.port, root))
        self.router = start_router(self.config, env=ENV)
        self.url = self.router.url

    def post(self, key: str | None, model: str = "MoM", path: str = "/v1/chat/completions", **fields):
        return send(self.url, key, model, path, **fields)

    def models(self, key: str) -> list[str]:
        r = httpx.get(f"{self.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["data"]]

    def experiments(self) -> dict:
        r = httpx.get(f"{self.url}/admin/experiments", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 200, r.text
        return {e["name"]: e for e in r.json()["data"]}

    def stop(self):
        self.router.stop()
        self.sim.stop()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    s = Setup(tmp_path_factory.mktemp("tenants"))
    yield s
    s.stop()


def test_keys_hash_prints_one_storable_line():
    line = key_hash("some key")
    assert line.startswith("sha256:") and len(line.split(":")) == 3 and "some key" not in line
    assert key_hash("some key") != line  # a fresh salt every time
    direct = subprocess.run(lora_router("keys", "hash", "k2"), capture_output=True, text=True, check=True)
    assert direct.stdout.count("\n") == 1
    empty = subprocess.run(lora_router("keys", "hash", "-"), input="\n", capture_output=True, text=True)
    assert empty.returncode != 0 and "empty" in empty.stderr


def test_no_key_or_a_wrong_key_is_401(setup):
    for key in (None, "sk-nobody", ACME_KEY + "x"):
        for path in ("/v1/chat/completions", "/v1/completions", "/v1/classify"):
            r = setup.post(key, path=path, prompt="x", text="x")
            assert r.status_code == 401, (key, path, r.text)
            assert r.json()["error"]["type"] == "AuthenticationError"
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        assert httpx.get(f"{setup.url}/v1/models", headers=headers).status_code == 401
    assert httpx.get(f"{setup.url}/health").status_code == 200
    # The admin key is not a tenant key, nor the other way round.
    assert setup.post(ADMIN).status_code == 401
    assert (
        httpx.get(f"{setup.url}/admin/experiments", headers={"Authorization": f"Bearer {ACME_KEY}"}).status_code == 401
    )
    # Metrics name every adapter: with tenants they need the admin key.
    assert httpx.get(f"{setup.url}/metrics").status_code == 401
    assert httpx.get(f"{setup.url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_each_tenant_reaches_only_its_own_adapters(setup):
    r = setup.post(BETA_KEY, "beta-support-lora")
    assert r.status_code == 200 and r.json()["model"] == "beta-support-lora"
    r = setup.post(ACME_KEY, "acme-finance-lora-v2")
    assert r.status_code == 200 and r.json()["model"] == "acme-finance-lora-v2"
    # Aliases are per tenant.
    assert setup.post(BETA_KEY, "my-model").headers["x-lora-router-adapter"] == "beta-support-lora"
    assert setup.post(ACME_KEY, "my-model").headers["x-lora-router-adapter"].startswith("acme-finance-lora")

    def not_found(key: str, model: str, path: str = "/v1/chat/completions", **fields) -> dict:
        r = setup.post(key, model, path=path, **fields)
        assert r.status_code == 404, (model, r.text)
        return r.json()

    # Another tenant's adapter, in every spelling, is answered exactly like a model that
    # does not exist.
    for theirs, ghost in [
        ("acme-finance-lora", "zz-finance-lora"),
        ("tiny-base@acme-finance-lora", "tiny-base@zz-finance-lora"),
        ("tiny-base:acme-candidate", "tiny-base:zz-candidate"),
        ("legal-lora", "zz-al-lora"),
    ]:
        a, b = not_found(BETA_KEY, theirs), not_found(BETA_KEY, ghost)
        assert a == json.loads(json.dumps(b).replace(ghost, theirs))
        assert a["error"]["message"] == f"The model `{theirs}` does not exist."
    assert not_found(BETA_KEY, "tiny-base", adapter_id="acme-finance-lora")["error"]["param"] == "model"
    assert not_found(ACME_KEY, "beta-support-lora", path="/v1/completions", prompt="hi")
    assert not_found(ACME_KEY, "beta-support-lora", path="/v1/classify", text="hi")
    # The list shows only what the tenant may use, its aliases included.
    assert setup.models(BETA_KEY) == ["tiny-base", "beta-support-lora", "my-model"]
    acme = setup.models(ACME_KEY)
    assert acme[0] == "MoM" and set(acme) == {"MoM", "tiny-base", "my-model", *ADAPTERS[:3]}


def test_intent_routing_stays_within_the_tenant(setup):
    # acme routes by intent: finance goes to its adapter (then the experiment may pick v2);
    # legal names an adapter acme may not use, so its default serves instead.
    r = setup.post(ACME_KEY, text="my invoice is wrong", user="u-1")
    assert r.headers["x-lora-router-category"] == "finance"
    assert r.headers["x-lora-router-adapter"] in ("acme-finance-lora", "acme-finance-lora-v2")
    r = setup.post(ACME_KEY, text="review this contract", user="u-1")
    assert r.headers["x-lora-router-category"] == "legal"
    assert r.headers["x-lora-router-adapter"] in ("acme-finance-lora", "acme-finance-lora-v2")
    d = httpx.post(
        f"{setup.url}/v1/classify",
        json={"text": "review this contract"},
        headers={"Authorization": f"Bearer {ACME_KEY}"},
    ).json()
    assert "legal-lora" not in json.dumps(d)
    # beta has intent routing off: MoM is its default adapter, whatever the text.
    r = setup.post(BETA_KEY, text="review this contract")
    assert r.status_code == 200 and r.headers["x-lora-router-adapter"] == "beta-support-lora"


def test_the_split_holds_its_ratio_and_users_stay_in_their_arm(setup):
    arms: dict[str, str] = {}
    for i in range(300):
        r = setup.post(ACME_KEY, "my-model", user=f"user-{i}")
        assert r.status_code == 200
        name, arm = r.headers["x-lora-router-experiment"].split("=")
        assert name == "finance-v2" and r.json()["model"] == arm == r.headers["x-lora-router-adapter"]
        arms[f"user-{i}"] = arm
    share = sum(a == "acme-finance-lora-v2" for a in arms.values()) / len(arms)
    # Binomial: n = 300, p = 0.3, sd 0.026; four of them.
    assert abs(share - 0.3) < 0.11, share
    for user in list(arms)[:60]:
        r = setup.post(ACME_KEY, "acme-finance-lora", user=user)  # the control's own name is split too
        assert r.headers["x-lora-router-experiment"] == f"finance-v2={arms[user]}"
    # Naming another arm explicitly bypasses the split.
    r = setup.post(ACME_KEY, "acme-finance-lora-v2", user="user-0")
    assert "x-lora-router-experiment" not in r.headers and r.json()["model"] == "acme-finance-lora-v2"
    stats = {a["adapter"]: a["stats"] for a in setup.experiments()["finance-v2"]["arms"]}
    assert sum(s["requests"] for s in stats.values()) >= 360
    for s in stats.values():
        assert s["errors"] == 0 and s["completion_tokens"] > 0 and s["prompt_tokens"] > 0
        assert s["total_ms"]["mean"] > 0 and s["first_byte_ms"]["mean"] > 0


def test_weights_change_through_the_admin_api_and_on_reload(setup):
    auth = {"Authorization": f"Bearer {ADMIN}"}
    url = f"{setup.url}/admin/experiments/finance-v2"
    r = httpx.patch(url, json={"weights": {"acme-finance-lora": 0, "acme-finance-lora-v2": 1}}, headers=auth)
    assert r.status_code == 200, r.text
    assert [a["weight"] for a in r.json()["arms"]] == [0, 1]
    for i in range(30):
        assert setup.post(ACME_KEY, "my-model", user=f"w-{i}").json()["model"] == "acme-finance-lora-v2"
    bad = httpx.patch(url, json={"weights": {"legal-lora": 1}}, headers=auth)
    assert bad.status_code == 400 and "not an arm" in bad.json()["error"]["message"]
    assert httpx.patch(url, json={"weights": {"acme-finance-lora": -1}}, headers=auth).status_code == 400
    assert httpx.patch(f"{url}x", json={"weights": {}}, headers=auth).status_code == 404
    before = setup.experiments()["finance-v2"]["arms"][1]["stats"]["requests"]
    # A reload sets the config's weights (here: everything to the control); statistics stay.
    cfg = tenants_config(setup.sim.port, setup.root)
    cfg["experiments"][0]["arms"][0]["weight"] = 1.0
    cfg["experiments"][0]["arms"][1]["weight"] = 0.0
    write_config(setup.config, cfg)
    setup.router.p.send_signal(signal.SIGHUP)
    wait_until(lambda: setup.experiments()["finance-v2"]["arms"][0]["weight"] == 1.0)
    for i in range(30):
        assert setup.post(ACME_KEY, "my-model", user=f"w-{i}").json()["model"] == "acme-finance-lora"
    assert setup.experiments()["finance-v2"]["arms"][1]["stats"]["requests"] == before


def test_shadow_copies_never_reach_the_client(setup):
    httpx.delete(f"{setup.sim.url}/sim/requests")
    for i in range(5):
        r = setup.post(ACME_KEY, "my-model", user=f"s-{i}", text=f"shadow me {i}")
        assert r.status_code == 200 and r.json()["model"] != "acme-candidate"
        assert "acme-candidate" not in r.text

    def copies() -> list[dict]:
        seen = httpx.get(f"{setup.sim.url}/sim/requests").json()["requests"]
        return [x["body"] for x in seen if isinstance(x["body"], dict) and x["body"].get("model") == "acme-candidate"]

    # The copies reach the replica in the background, each with the client's messages.
    wait_until(lambda: len(copies()) == 5)
    assert all(c["messages"][-1]["content"].startswith("shadow me") for c in copies())
    stats = setup.experiments()["finance-v2"]["shadow"]["stats"]
    assert stats["requests"] >= 5 and stats["errors"] == 0 and stats["completion_tokens"] > 0


def test_the_audit_log_explains_each_decision_without_keys(setup):
    setup.post(ACME_KEY, "my-model", user="audited")
    rows = [json.loads(x) for x in (setup.root / "audit.jsonl").read_text().splitlines()]
    row = next(r for r in reversed(rows) if r.get("tenant") == "acme" and r.get("experiment"))
    assert row["key_id"].startswith("acme/") and row["experiment"].startswith("finance-v2=")
    assert row["usage"]["completion_tokens"] > 0 and row["adapter"] == row["experiment"].split("=")[1]
    beta = next(r for r in reversed(rows) if r.get("tenant") == "beta")
    assert beta["key_id"] == "beta/env:BETA_KEY"
    denied = [r for r in rows if r["status"] == 401]
    assert denied and all(r["tenant"] is None for r in denied)
    text = (setup.root / "audit.jsonl").read_text()
    assert ACME_KEY not in text and BETA_KEY not in text


# --- quotas -------------------------------------------------------------------------------


def quota_config(port: int, root: Path, limits: dict, **overrides) -> dict:
    cfg = tenants_config(port, root, experiments=[], **overrides)
    cfg["tenants"][0]["limits"] = limits
    return cfg


def test_requests_and_tokens_per_minute_in_process(tmp_path):
    adapters = make_adapters(tmp_path, ADAPTERS)
    sim = start_sim(adapters)
    router = start_router(write_config(tmp_path / "c.yaml", quota_config(sim.port, tmp_path, {"rpm": 3})), env=ENV)
    try:
        for _ in range(3):
            assert send(router.url, ACME_KEY, "my-model").status_code == 200
        r = send(router.url, ACME_KEY, "my-model")
        assert r.status_code == 429 and r.json()["error"]["type"] == "RateLimitError"
        assert 1 <= int(r.headers["retry-after"]) <= 60 and "requests per minute" in r.json()["error"]["message"]
        # The other tenant is not affected.
        assert send(router.url, BETA_KEY, "my-model").status_code == 200
    finally:
        router.stop()
    # Tokens: each answer here is 16 completion tokens plus the prompt.
    cfg = quota_config(sim.port, tmp_path, {"tpm": 40})
    router = start_router(write_config(tmp_path / "c.yaml", cfg), env=ENV)
    try:
        codes = [send(router.url, ACME_KEY, "my-model", max_tokens=16).status_code for _ in range(4)]
        assert codes[:2] == [200, 200] and codes[-1] == 429, codes
        r = send(router.url, ACME_KEY, "my-model", stream=True)
        assert r.status_code == 429 and "tokens per minute" in r.json()["error"]["message"]
    finally:
        router.stop()
        sim.stop()


def test_an_adapter_concurrency_cap(tmp_path):
    adapters = make_adapters(tmp_path, ADAPTERS)
    sim = start_sim(adapters, extra=["--ttft-ms", "600"])
    cfg = tenants_config(sim.port, tmp_path, experiments=[])
    cfg["model_config"]["tiny-base"]["loras"][3]["max_concurrency"] = 1
    router = start_router(write_config(tmp_path / "c.yaml", cfg), env=ENV)
    headers = {"Authorization": f"Bearer {BETA_KEY}"}
    codes: list[int] = []

    def send():
        codes.append(
            httpx.post(f"{router.url}/v1/chat/completions", json=chat("my-model"), headers=headers).status_code
        )

    try:
        threads = [threading.Thread(target=send) for _ in range(3)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(10)
        assert sorted(codes) == [200, 429, 429], codes
        # Places come back when requests end.
        assert (
            httpx.post(f"{router.url}/v1/chat/completions", json=chat("my-model"), headers=headers).status_code == 200
        )
    finally:
        router.stop()
        sim.stop()


@pytest.fixture
def redis_server(tmp_path):
    port = free_port()
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up)
    yield f"redis://127.0.0.1:{port}/0"
    p.terminate()
    p.wait(10)


def test_two_routers_share_quotas_through_redis(tmp_path, redis_server):
    adapters = make_adapters(tmp_path, ADAPTERS)
    sim = start_sim(adapters)
    cfg = quota_config(sim.port, tmp_path, {"rpm": 4}, quotas={"redis_url": redis_server, "redis_prefix": "t1"})
    path = write_config(tmp_path / "c.yaml", cfg)
    routers = [start_router(path, env=ENV), start_router(path, env=ENV)]
    try:
        codes = [send(routers[i % 2].url, ACME_KEY, "my-model").status_code for i in range(6)]
        # Four in all, whichever router they reached; in-process counters would have allowed eight.
        assert codes == [200, 200, 200, 200, 429, 429], codes
        # The counts are in Redis, in the tenant's sliding window (one-second buckets).
        window = subprocess.run(
            ["redis-cli", "-u", redis_server, "hgetall", "t1:quota:acme"], capture_output=True, text=True
        ).stdout.split()
        assert sum(int(v) for k, v in zip(window[::2], window[1::2], strict=True) if k.startswith("r")) == 4
    finally:
        for r in routers:
            r.stop()
        sim.stop()


@pytest.mark.parametrize(
    ("policy", "codes"),
    [
        # Fail open (the default): admitted, and counted as quota backend errors.
        ("allow", [200] * 6),
        # Refuse what cannot be counted.
        ("deny", [503] * 6),
        # Each of the fleet's 3 routers enforces its third of rpm 6 in the process.
        ("local", [200, 200, 429, 429, 429, 429]),
    ],
)
def test_a_redis_that_is_down_follows_on_backend_error(tmp_path, policy, codes):
    adapters = make_adapters(tmp_path, ADAPTERS)
    sim = start_sim(adapters)
    cfg = quota_config(
        sim.port,
        tmp_path,
        {"rpm": 6},
        quotas={"redis_url": f"redis://127.0.0.1:{free_port()}", "redis_prefix": "t2", "on_backend_error": policy},
        fleet={"expected_replicas": 3},
    )
    router = start_router(write_config(tmp_path / "c.yaml", cfg), env=ENV)
    try:
        got = [send(router.url, ACME_KEY, "my-model") for _ in range(6)]
        assert [r.status_code for r in got] == codes
        if policy == "deny":
            assert "quota service is unavailable" in got[0].json()["error"]["message"]
            assert httpx.get(f"{router.url}/readyz").status_code == 503
        text = httpx.get(f"{router.url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
        line = next(x for x in text.splitlines() if x.startswith("lora_router_quota_backend_errors_total"))
        assert float(line.split()[-1]) >= 6
        # Admin writes need the store: refused with a clear 503, nothing changed.
        body = {"name": "later", "api_keys": [key_hash("sk-later-0000")], "adapters": ["legal-lora"]}
        r = httpx.post(f"{router.url}/admin/tenants", json=body, headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 503 and "shared state store is unavailable" in r.json()["error"]["message"]
    finally:
        router.stop()
        sim.stop()


def test_config_errors_name_the_key(tmp_path):
    sim_port = free_port()
    cases = [
        (lambda c: c["tenants"][0].update(api_keys=["plain-key"]), "tenants[0].api_keys[0]"),
        (lambda c: c["tenants"][0].update(adapters=["nope"]), "tenants[0].adapters[0]"),
        (lambda c: c["tenants"][1].update(api_key_env="NOT_SET_ANYWHERE"), "tenants[1].api_key_env"),
        (lambda c: c["tenants"][0]["aliases"].update({"x": "beta-support-lora"}), "tenants[0].aliases.x"),
        (
            lambda c: c["experiments"][0]["arms"].append({"adapter": "legal-lora", "weight": 1}),
            "experiments[0].arms[2]",
        ),
        (lambda c: c["experiments"][0].update(sticky_key="cookie"), "experiments[0].sticky_key"),
        (lambda c: c["experiments"][0].update(tenant="nobody"), "experiments[0].tenant"),
    ]
    for change, key in cases:
        cfg = tenants_config(sim_port, tmp_path)
        change(cfg)
        path = write_config(tmp_path / "bad.yaml", cfg)
        out = subprocess.run(lora_router("check", "--config", str(path)), capture_output=True, text=True, env=None)
        assert out.returncode != 0 and key in out.stderr and "bad.yaml" in out.stderr, (key, out.stderr)


def test_check_summarises_tenants(tmp_path):
    path = write_config(tmp_path / "ok.yaml", tenants_config(free_port(), tmp_path))
    out = subprocess.run(
        lora_router("check", "--config", str(path)), capture_output=True, text=True, env={**os.environ, **ENV}
    )
    assert out.returncode == 0, out.stderr
    assert "tenants (2), API keys required" in out.stdout and "experiment finance-v2" in out.stdout
    assert "sha256:" not in out.stdout


def test_tenants_added_and_removed_through_the_admin_api(setup):
    auth = {"Authorization": f"Bearer {ADMIN}"}
    url = f"{setup.url}/admin/tenants"
    gamma_key = "sk-gamma-5555"
    body = {"name": "gamma", "api_keys": [key_hash(gamma_key)], "adapters": ["legal-lora"], "limits": {"rpm": 100}}
    assert send(setup.url, gamma_key, "legal-lora").status_code == 401
    r = httpx.post(url, json=body, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "runtime" and r.json()["key_ids"][0].startswith("gamma/")
    assert send(setup.url, gamma_key, "legal-lora").status_code == 200
    assert send(setup.url, gamma_key, "acme-finance-lora").status_code == 404
    listed = {t["name"]: t for t in httpx.get(url, headers=auth).json()["data"]}
    assert set(listed) == {"acme", "beta", "gamma"} and listed["acme"]["source"] == "config"
    assert "sha256:" not in json.dumps(listed)
    for bad, status, words in [
        (body, 409, "exists already"),
        ({**body, "name": "delta", "api_key_env": "X"}, 400, "hashed `api_keys` only"),
        ({**body, "name": "delta", "api_keys": ["plain"]}, 400, "api_keys[0]"),
        ({**body, "name": "delta", "adapters": ["nope"]}, 400, "adapters[0]"),
        ({**body, "name": "delta", "surprise": 1}, 400, "surprise"),
    ]:
        r = httpx.post(url, json=bad, headers=auth)
        assert r.status_code == status and words in r.json()["error"]["message"], r.text
    assert httpx.delete(f"{url}/acme", headers=auth).status_code == 409
    assert httpx.delete(f"{url}/gamma", headers=auth).status_code == 200
    assert httpx.delete(f"{url}/gamma", headers=auth).status_code == 404
    assert send(setup.url, gamma_key, "legal-lora").status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {ACME_KEY}"}).status_code == 401
