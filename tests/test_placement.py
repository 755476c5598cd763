"""Adapters across replicas, against two simulators with max_loras 2 and six adapters behind
`lora-router serve`: the registry loads each adapter on its home, requests go to a replica
that holds their adapter, the admin API registers, versions and unregisters adapters (with
drain), adapters load on demand, and a restarted replica gets its adapters back."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from support import (
    Proc,
    chat,
    free_port,
    lora_router,
    make_adapters,
    register_adapter,
    start_router,
    wait_until,
    write_config,
)

KEY = "admin-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADAPTERS = [f"a{i}" for i in range(6)]


def start_sim_on(port: int, *extra: str, runtime: bool = True, itl_ms: float = 0) -> Proc:
    args = ["sim", "--port", str(port), "--served-model-name", "tiny-base", "--max-loras", "2"]
    args += ["--itl-ms", str(itl_ms)]
    if runtime:
        args.append("--allow-runtime-lora-updating")
    return Proc(lora_router(*args, *extra))


def placement_config(root: Path, ports: list[int], adapters: dict[str, str], **overrides) -> dict:
    cfg = {
        "vllm_endpoints": [
            {"name": f"s{i}", "address": "127.0.0.1", "port": p, "max_loras": 2} for i, p in enumerate(ports)
        ],
        "model_config": {"tiny-base": {"loras": [{"name": n, "path": p} for n, p in adapters.items()]}},
        "default_model": "tiny-base",
        "adapter_roots": [str(root / "adapters")],
        "server": {"health_check": {"interval_s": 0.2, "timeout_s": 0.5}},
        "placement": {"reconcile_interval_s": 0.3, "load_timeout_s": 10, "drain_timeout_s": 30},
        "audit_log": {"enabled": True, "path": "audit.jsonl"},
    }
    cfg.update(overrides)
    return cfg


class Cluster:
    def __init__(self, root: Path, itl_ms: float = 0, reconcile_s: float = 0.3):
        self.root = root
        self.adapters = make_adapters(root, ADAPTERS)
        self.ports = [free_port(), free_port()]
        self.sims = [start_sim_on(p, itl_ms=itl_ms) for p in self.ports]
        cfg = placement_config(root, self.ports, self.adapters)
        cfg["placement"]["reconcile_interval_s"] = reconcile_s
        self.config = write_config(root / "config.yaml", cfg)
        self.router = start_router(self.config, env={"LORA_ROUTER_ADMIN_KEY": KEY})
        self.url = self.router.url
        wait_until(lambda: all(a["versions"][0]["loaded_on"] for a in self.adapters_json()), timeout=20)

    def adapters_json(self) -> list[dict]:
        r = httpx.get(f"{self.url}/admin/adapters", headers=AUTH)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def adapter(self, name: str) -> dict:
        return next(a for a in self.adapters_json() if a["name"] == name)

    def replicas(self) -> dict[str, dict]:
        return {r["name"]: r for r in httpx.get(f"{self.url}/admin/replicas", headers=AUTH).json()["data"]}

    def sim_models(self, i: int) -> list[str]:
        return [m["id"] for m in httpx.get(f"{self.sims[i].url}/v1/models").json()["data"] if m["parent"]]

    def sim_loads(self, i: int) -> list[dict]:
        reqs = httpx.get(f"{self.sims[i].url}/sim/requests").json()["requests"]
        return [r["body"] for r in reqs if r["path"] == "/v1/load_lora_adapter"]

    def audit(self) -> list[dict]:
        path = self.root / "audit.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def post(self, model: str, **fields) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/chat/completions", json=chat(model=model, **fields), timeout=30)

    def stop(self) -> None:
        self.router.stop()
        for s in self.sims:
            s.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("placement"))
    yield c
    c.stop()


def test_every_adapter_is_loaded_on_its_home(cluster):
    served = {f"s{i}": set(cluster.sim_models(i)) for i in range(2)}
    for a in cluster.adapters_json():
        (home,) = a["homes"]
        assert a["versions"][0]["loaded_on"] == [home], a
        assert a["name"] in served[home]
        assert home == a["placement_order"][0]
    # Six adapters over two replicas with two slots each: the registry spreads them by hash.
    assert sum(len(s) for s in served.values()) == 6


def test_requests_go_to_a_replica_that_holds_the_adapter(cluster):
    homes = {a["name"]: a["homes"][0] for a in cluster.adapters_json()}
    loads_before = len(cluster.sim_loads(0)) + len(cluster.sim_loads(1))
    for _ in range(3):
        for name in ADAPTERS:
            r = cluster.post(name)
            assert r.status_code == 200, r.text
            assert r.headers["x-lora-router-backend"] == homes[name]
            assert r.json()["model"] == name
    # No on-demand load was needed.
    assert len(cluster.sim_loads(0)) + len(cluster.sim_loads(1)) == loads_before
    assert not any(row.get("loaded_adapter") for row in cluster.audit())
    # The slot model saw each replica's adapters pass through its two slots.
    for r in cluster.replicas().values():
        assert len(r["resident"]) == 2 and r["max_loras"] == 2 and r["runtime_updates"] == "on"


def test_register_loads_where_placement_says_and_serves(cluster):
    make_adapters(cluster.root, ["fresh"])
    path = str(cluster.root / "adapters" / "fresh")
    r = register_adapter(cluster.url, AUTH, "fresh", path, "tiny-base")
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["source"] == "runtime" and a["state"] == "active"
    assert a["versions"][0]["loaded_on"] == a["homes"] == a["placement_order"][:1]
    home = a["homes"][0]
    assert "fresh" in cluster.sim_models(int(home[1:]))
    assert "fresh" not in cluster.sim_models(1 - int(home[1:]))
    resp = cluster.post("fresh")
    assert resp.status_code == 200 and resp.headers["x-lora-router-backend"] == home
    assert "fresh" in [m["id"] for m in httpx.get(f"{cluster.url}/v1/models").json()["data"]]


def test_a_new_version_flips_then_the_old_one_drains(cluster):
    make_adapters(cluster.root, ["ver-1", "ver-2"])
    post = lambda p: register_adapter(cluster.url, AUTH, "ver", str(cluster.root / "adapters" / p), "tiny-base")  # noqa: E731
    assert post("ver-1").status_code == 201
    assert cluster.post("ver").json()["model"] == "ver"
    r = post("ver-2")
    assert r.status_code == 201, r.text
    assert [(v["version"], v["served_name"]) for v in r.json()["versions"]][-1] == (2, "ver--v2")
    resp = cluster.post("ver")
    assert resp.json()["model"] == "ver--v2" and resp.headers["x-lora-router-adapter"] == "ver"
    wait_until(lambda: [v["version"] for v in cluster.adapter("ver")["versions"]] == [2], timeout=10)
    assert all("ver" not in cluster.sim_models(i) for i in range(2))
    # The same path again is a duplicate.
    assert post("ver-2").status_code == 409


def test_unregister_drains_in_flight_requests_then_unloads(tmp_path):
    cluster = Cluster(tmp_path, itl_ms=300)  # 4 tokens: about 1.2 s per request
    try:
        make_adapters(cluster.root, ["gone"])
        r = register_adapter(
            cluster.url, AUTH, "gone", str(cluster.root / "adapters" / "gone"), "tiny-base", timeout=30
        )
        assert r.status_code == 201
        home = int(r.json()["homes"][0][1:])
        streamed: list[httpx.Response] = []
        t = threading.Thread(target=lambda: streamed.append(cluster.post("gone", stream=True)))
        t.start()
        wait_until(lambda: cluster.adapter("gone")["versions"][0]["requests_in_flight"] == 1)
        started = time.monotonic()
        d = httpx.delete(f"{cluster.url}/admin/adapters/gone", headers=AUTH)
        assert d.status_code == 202 and time.monotonic() - started < 0.5
        assert d.json()["state"] == "draining"
        # New requests no longer reach it; the one in flight finishes.
        assert cluster.post("gone").status_code == 404
        assert cluster.adapter("gone")["state"] == "draining"
        assert "gone" in cluster.sim_models(home)
        t.join(10)
        assert streamed[0].status_code == 200 and streamed[0].text.rstrip().endswith("data: [DONE]")
        wait_until(lambda: "gone" not in cluster.sim_models(home), timeout=10)
        assert httpx.get(f"{cluster.url}/admin/adapters/gone", headers=AUTH).status_code == 404
    finally:
        cluster.stop()


def test_on_demand_load_when_the_home_is_down_one_load_for_many_requests(tmp_path):
    # The registry would move the adapter itself within its interval: make that long.
    cluster = Cluster(tmp_path, reconcile_s=120)
    try:
        a = cluster.adapter("a0")
        home = int(a["homes"][0][1:])
        other = 1 - home
        cluster.sims[home].stop()
        wait_until(lambda: not cluster.replicas()[f"s{home}"]["healthy"])
        before = len(cluster.sim_loads(other))
        with_threads = [threading.Thread(target=lambda: cluster.post("a0")) for _ in range(8)]
        for t in with_threads:
            t.start()
        for t in with_threads:
            t.join(20)
        loads = [b for b in cluster.sim_loads(other)[before:] if b["lora_name"] == "a0"]
        assert len(loads) == 1, loads
        assert "a0" in cluster.sim_models(other)
        assert any(row.get("loaded_adapter") and row["backend"] == f"s{other}" for row in cluster.audit())
    finally:
        cluster.stop()


def test_a_restarted_replica_gets_its_adapters_back(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        mine = sorted(a["name"] for a in cluster.adapters_json() if a["homes"] == ["s0"])
        assert mine
        epoch = cluster.replicas()["s0"]["epoch"]
        cluster.sims[0].stop()
        wait_until(lambda: not cluster.replicas()["s0"]["healthy"])
        cluster.sims[0] = start_sim_on(cluster.ports[0])
        assert cluster.sim_models(0) == []
        wait_until(lambda: sorted(cluster.sim_models(0)) == mine, timeout=20)
        assert cluster.replicas()["s0"]["epoch"] == epoch + 1
        r = cluster.post(mine[0])
        assert r.status_code == 200 and r.headers["x-lora-router-backend"] == "s0"
    finally:
        cluster.stop()


def test_a_replica_without_runtime_updates_serves_what_it_has(tmp_path):
    adapters = make_adapters(tmp_path, ["static-a", "dyn-b"])
    ports = [free_port(), free_port()]
    static = start_sim_on(ports[0], "--lora-modules", f"static-a={adapters['static-a']}", runtime=False)
    dynamic = start_sim_on(ports[1])
    cfg = placement_config(tmp_path, ports, adapters)
    cfg["model_config"]["tiny-base"]["loras"] = [{"name": "static-a"}, {"name": "dyn-b", "path": adapters["dyn-b"]}]
    router = start_router(write_config(tmp_path / "c.yaml", cfg), env={"LORA_ROUTER_ADMIN_KEY": KEY})
    try:
        url = f"{router.url}/v1/chat/completions"
        wait_until(lambda: httpx.post(url, json=chat(model="dyn-b")).status_code == 200, timeout=20)
        for _ in range(5):
            assert httpx.post(url, json=chat(model="dyn-b")).headers["x-lora-router-backend"] == "s1"
            assert httpx.post(url, json=chat(model="static-a")).headers["x-lora-router-backend"] == "s0"
        replicas = {r["name"]: r for r in httpx.get(f"{router.url}/admin/replicas", headers=AUTH).json()["data"]}
        assert replicas["s0"]["runtime_updates"] == "off" and "dyn-b" not in replicas["s0"]["registered"]
        # Only the static replica has static-a and it goes down: a clear 503, not a hang.
        static.stop()
        wait_until(lambda: httpx.post(url, json=chat(model="static-a")).status_code == 503)
        err = httpx.post(url, json=chat(model="static-a")).json()["error"]
        assert "serves or can load the adapter `static-a`" in err["message"]
    finally:
        router.stop()
        static.stop()
        dynamic.stop()


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": KEY}, 401), (AUTH, 200)],
)
def test_the_admin_key_is_required(cluster, headers, status):
    r = httpx.get(f"{cluster.url}/admin/adapters", headers=headers)
    assert r.status_code == status
    if status == 401:
        assert r.json()["error"]["type"] == "AuthenticationError"


def test_admin_api_is_off_without_a_key(tmp_path):
    adapters = make_adapters(tmp_path, ["x"])
    cfg = placement_config(tmp_path, [free_port()], adapters)
    router = start_router(write_config(tmp_path / "c.yaml", cfg), env={"LORA_ROUTER_ADMIN_KEY": ""})
    try:
        r = httpx.get(f"{router.url}/admin/adapters", headers=AUTH)
        assert r.status_code == 404 and "admin API is off" in r.json()["error"]["message"]
    finally:
        router.stop()


def test_admin_errors(cluster):
    make_adapters(cluster.root, ["ok-adapter"])
    good = str(cluster.root / "adapters" / "ok-adapter")
    not_adapter = cluster.root / "adapters" / "empty-dir"
    not_adapter.mkdir(exist_ok=True)
    cases = [
        ({"name": "x", "path": good, "base_model": "nope"}, 404, "base model `nope`"),
        ({"name": "a0", "path": good, "base_model": "tiny-base"}, 201, None),  # a new version of a0
        ({"name": "tiny-base", "path": good, "base_model": "tiny-base"}, 409, "base model or a virtual model"),
        ({"name": "x", "path": "/etc", "base_model": "tiny-base"}, 400, "not under adapter_roots"),
        ({"name": "x", "path": f"{good}/../../../etc", "base_model": "tiny-base"}, 400, "may not contain '..'"),
        ({"name": "x", "path": str(not_adapter), "base_model": "tiny-base"}, 502, "No adapter found"),
        ({"name": "x", "base_model": "tiny-base"}, 400, "`path` is required"),
        ({"name": "x y", "path": good, "base_model": "tiny-base"}, 400, "letters, digits"),
        ({"name": "x", "path": good, "base_model": "tiny-base", "min_replicas": 0}, 400, "positive integer"),
        ({"name": "x", "path": good, "base_model": "tiny-base", "colour": 1}, 400, "Unknown field `colour`"),
    ]
    for body, status, message in cases:
        r = httpx.post(f"{cluster.url}/admin/adapters", headers=AUTH, json=body, timeout=30)
        assert r.status_code == status, (body, r.text)
        if message:
            assert message in r.json()["error"]["message"], r.text
    r = httpx.post(f"{cluster.url}/admin/adapters", headers=AUTH, content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    assert httpx.delete(f"{cluster.url}/admin/adapters/a1", headers=AUTH).status_code == 409
    assert httpx.delete(f"{cluster.url}/admin/adapters/nope", headers=AUTH).status_code == 404
    assert httpx.put(f"{cluster.url}/admin/adapters", headers=AUTH).status_code == 405


def test_cli(cluster):
    make_adapters(cluster.root, ["via-cli"])
    env_args = ["--router", cluster.url, "--admin-key", KEY]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(lora_router("adapters", *args, *env_args), capture_output=True, text=True, timeout=60)

    path = str(cluster.root / "adapters" / "via-cli")
    r = cli("register", "via-cli", "--path", path, "--base-model", "tiny-base")
    assert r.returncode == 0, r.stderr
    assert "via-cli" in r.stdout and "active" in r.stdout
    listing = cli("list")
    assert listing.returncode == 0 and "via-cli" in listing.stdout and "a5" in listing.stdout
    assert "slots 2/2" in cli("replicas").stdout
    r = cli("unregister", "via-cli")
    assert r.returncode == 0 and "drains" in r.stdout
    wait_until(lambda: "via-cli" not in cli("list").stdout, timeout=10)
    r = cli("register", "bad", "--path", "/etc", "--base-model", "tiny-base")
    assert r.returncode == 2 and "not under adapter_roots" in r.stderr
    r = subprocess.run(
        lora_router("adapters", "list", "--router", cluster.url, "--admin-key", "wrong"), capture_output=True, text=True
    )
    assert r.returncode == 2 and "401" in r.stderr


def test_config_errors_for_placement(tmp_path):
    from lora_router import ConfigError, load_config

    adapters = make_adapters(tmp_path, ["a"])
    cases = [
        (
            {"loras": [{"name": "a", "path": "/etc/a"}]},
            "model_config.tiny-base.loras[0].path",
            "not under adapter_roots",
        ),
        (
            {"loras": [{"name": "a", "path": adapters["a"], "min_replicas": 2, "max_replicas": 1}]},
            "model_config.tiny-base.loras[0].max_replicas",
            "below min_replicas",
        ),
    ]
    for model, key, message in cases:
        cfg = placement_config(tmp_path, [9], adapters)
        cfg["model_config"]["tiny-base"] = model
        path = write_config(tmp_path / "c.yaml", cfg)
        with pytest.raises(ConfigError) as e:
            load_config(path)
        assert key in str(e.value) and message in str(e.value)
    cfg = placement_config(tmp_path, [9], adapters, placement={"policy": "random"})
    with pytest.raises(ConfigError, match=r"placement\.policy"):
        load_config(write_config(tmp_path / "c.yaml", cfg))
