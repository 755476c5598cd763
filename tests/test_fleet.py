"""Fleet mode: three `lora-router serve` processes in front of four simulators share their
run-time state through one real Redis (TLS, AUTH with an ACL user and a requirepass, database
3). What one router is told, every router does; quotas count across them; a frozen Redis costs
a bounded wait; a restarted router comes back with the state; SIGTERM drains."""

from __future__ import annotations

import json
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support import (
    RedisServer,
    base_config,
    chat,
    key_hash,
    make_adapters,
    metric,
    register_adapter,
    start_router,
    start_sim,
    wait_until,
    write_config,
)

ADMIN = "fleet-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
ACME_KEY = "sk-fleet-acme-0123456789"
ADAPTERS = ["technical-lora", "medical-lora", "legal-lora", "acme-v1", "acme-v2"]


class Fleet:
    def __init__(self, root: Path):
        self.root = root
        self.paths = make_adapters(root, [*ADAPTERS, "fresh-lora"])
        self.redis = RedisServer(root / "redis")
        statics = {n: self.paths[n] for n in ADAPTERS}
        self.sims = [start_sim(statics, extra=["--itl-ms", "1", "--ttft-ms", "2"]) for _ in range(4)]
        cfg = base_config([(f"vllm-{i}", s.port) for i, s in enumerate(self.sims)])
        cfg["model_config"]["tiny-base"]["loras"] += [{"name": "acme-v1"}, {"name": "acme-v2"}]
        cfg["redis"] = self.redis.section(timeout_ms=250, probe_interval_ms=1000)
        cfg["fleet"] = {"expected_replicas": 3}
        cfg["adapter_roots"] = [str(root / "adapters")]
        cfg["placement"] = {"reconcile_interval_s": 0.5}
        cfg["server"] = {"health_check": {"interval_s": 0.2, "timeout_s": 0.5}, "drain_delay_s": 1}
        cfg["tenants"] = [
            {
                "name": "acme",
                "api_keys": [key_hash(ACME_KEY)],
                "adapters": ["acme-v1", "acme-v2"],
                "default_adapter": "acme-v1",
                "aliases": {"assistant": "acme-v1"},
                "limits": {"rpm": 100},
            },
            # Unlimited: the experiment's split is measured on it, with no quota in the way.
            {"name": "ops", "api_key_env": "FLEET_OPS_KEY", "adapters": ["acme-v1", "acme-v2", *ADAPTERS[:3]]},
        ]
        cfg["experiments"] = [
            {
                "name": "acme-v2",
                "tenant": "ops",
                "sticky_key": "user",
                "arms": [{"adapter": "acme-v1", "weight": 1.0}, {"adapter": "acme-v2", "weight": 0.0}],
            }
        ]
        self.config = write_config(root / "fleet.yaml", cfg)
        self.env = {**self.redis.env(), "LORA_ROUTER_ADMIN_KEY": ADMIN, "FLEET_OPS_KEY": "sk-fleet-ops"}
        self.routers = [self.start_router() for _ in range(3)]
        for r in self.routers:
            wait_until(lambda r=r: httpx.get(f"{r.url}/readyz").status_code == 200, timeout=20)

    def start_router(self):
        return start_router(self.config, env=self.env)

    def url(self, i: int) -> str:
        return self.routers[i].url

    def stop(self) -> None:
        for p in [*self.routers, *self.sims]:
            p.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    yield f
    f.stop()


def ops(url: str, model: str, **fields) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=chat(model=model, **fields),
        headers={"Authorization": "Bearer sk-fleet-ops"},
        timeout=30,
    )


def until(cond, timeout: float) -> float:
    """Seconds until `cond()` holds (fails after `timeout`)."""
    started = time.monotonic()
    wait_until(cond, timeout=timeout, interval=0.02)
    return time.monotonic() - started


def test_every_router_is_ready_and_runs_the_same_plan(fleet):
    hashes = set()
    for i in range(3):
        r = httpx.get(f"{fleet.url(i)}/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["store"]["detail"] == "redis reachable"
        config = httpx.get(f"{fleet.url(i)}/admin/config", headers=AUTH).json()
        assert config["store"] == {"backend": "redis", "prefix": "lora-router"}
        hashes.add(config["hash"])
        text = httpx.get(f"{fleet.url(i)}/metrics", headers=AUTH).text
        assert f'lora_router_config_info{{hash="{config["hash"]}"}} 1' in text
    assert len(hashes) == 1


FRESH_KEY = "sk-fleet-fresh-user"


def fresh(url: str) -> httpx.Response:
    """A request for the adapter registered at run time, by the tenant entitled to it."""
    headers = {"Authorization": f"Bearer {FRESH_KEY}"}
    return httpx.post(f"{url}/v1/chat/completions", json=chat(model="fresh-lora"), headers=headers, timeout=30)


def test_an_adapter_registered_on_one_router_routes_on_all_within_a_second(fleet):
    r = register_adapter(fleet.url(0), AUTH, "fresh-lora", fleet.paths["fresh-lora"], "tiny-base")
    assert r.status_code == 201, r.text
    # Requests need a tenant that may use it: one added at run time (config tenants cannot
    # name an adapter that does not exist yet).
    body = {"name": "fresh-user", "api_keys": [key_hash(FRESH_KEY)], "adapters": ["fresh-lora"]}
    assert httpx.post(f"{fleet.url(0)}/admin/tenants", json=body, headers=AUTH).status_code == 201
    for i in (1, 2):
        took = until(lambda i=i: fresh(fleet.url(i)).status_code == 200, timeout=5)
        assert took < 1.0, f"router {i} routed the new adapter after {took:.2f} s"
        assert fresh(fleet.url(i)).headers["x-lora-router-adapter"] == "fresh-lora"
    # Every router lists it, with the same homes.
    listed = [httpx.get(f"{fleet.url(i)}/admin/adapters/fresh-lora", headers=AUTH).json() for i in range(3)]
    assert len({json.dumps(x["homes"]) for x in listed}) == 1
    # It is a record in Redis, not only in the router that was asked.
    assert "fresh-lora" in fleet.redis.cli("HKEYS", "lora-router:records:adapters")


def test_a_tenant_added_on_one_router_is_accepted_by_all(fleet):
    key = "sk-fleet-late-tenant-42"
    body = {"name": "late", "api_keys": [key_hash(key)], "adapters": ["technical-lora"]}
    r = httpx.post(f"{fleet.url(1)}/admin/tenants", json=body, headers=AUTH)
    assert r.status_code == 201, r.text

    def accepted(i: int) -> bool:
        resp = httpx.post(
            f"{fleet.url(i)}/v1/chat/completions",
            json=chat(model="technical-lora"),
            headers={"Authorization": f"Bearer {key}"},
        )
        return resp.status_code == 200

    for i in (0, 2):
        assert until(lambda i=i: accepted(i), timeout=5) < 1.0
    # The same name again, on another router: the store says it exists.
    assert httpx.post(f"{fleet.url(2)}/admin/tenants", json=body, headers=AUTH).status_code == 409


def test_experiment_weights_set_on_one_router_split_on_all(fleet):
    users = [f"user-{n}" for n in range(30)]
    before = {ops(fleet.url(n % 3), "acme-v1", user=u).headers["x-lora-router-adapter"] for n, u in enumerate(users)}
    assert before == {"acme-v1"}
    r = httpx.patch(
        f"{fleet.url(2)}/admin/experiments/acme-v2", json={"weights": {"acme-v1": 0, "acme-v2": 1}}, headers=AUTH
    )
    assert r.status_code == 200, r.text

    def all_on_v2() -> bool:
        arms = {ops(fleet.url(n % 3), "acme-v1", user=u).headers["x-lora-router-adapter"] for n, u in enumerate(users)}
        return arms == {"acme-v2"}

    assert until(all_on_v2, timeout=5) < 2.0

    # Any router shows the fleet's statistics: every request any of them sent (each router
    # adds its counts to the store every second).
    def served() -> int:
        stats = httpx.get(f"{fleet.url(0)}/admin/experiments/acme-v2", headers=AUTH).json()
        assert stats["statistics_from"].startswith("every router")
        return sum(a["stats"]["requests"] for a in stats["arms"])

    assert until(lambda: served() >= 2 * len(users), timeout=5) < 1.5
    for i in range(3):
        weights = httpx.get(f"{fleet.url(i)}/admin/experiments/acme-v2", headers=AUTH).json()["arms"]
        assert [a["weight"] for a in weights] == [0.0, 1.0]


def test_quotas_are_exact_across_the_fleet(fleet):
    """rpm 100, and 300 requests at once spread over the three routers: 100 get through (the
    window slides: up to two more may be admitted if the burst straddles a second)."""

    def send(n: int) -> int:
        return httpx.post(
            f"{fleet.url(n % 3)}/v1/chat/completions",
            json=chat(model="assistant"),
            headers={"Authorization": f"Bearer {ACME_KEY}"},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(60) as pool:
        codes = list(pool.map(send, range(300)))
    admitted = codes.count(200)
    assert 100 <= admitted <= 102, admitted
    assert codes.count(429) == 300 - admitted


def test_a_restarted_router_comes_back_with_the_run_time_state(fleet):
    fleet.routers[1].stop()
    fleet.routers[1] = fleet.start_router()
    url = fleet.url(1)
    wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=20)
    # Ready means the run-time state is read: the adapter, the tenants and the weights are there.
    assert fresh(url).status_code == 200
    late = httpx.post(
        f"{url}/v1/chat/completions",
        json=chat(model="technical-lora"),
        headers={"Authorization": "Bearer sk-fleet-late-tenant-42"},
    )
    assert late.status_code == 200
    assert ops(url, "acme-v1", user="someone").headers["x-lora-router-adapter"] == "acme-v2"


def test_a_frozen_redis_costs_at_most_one_timeout_per_probe(fleet):
    """SIGSTOP: the quota check of a limited tenant waits out one 250 ms timeout, then the
    circuit opens and requests are admitted at once (quotas.on_backend_error: allow)."""
    latencies: list[float] = []

    # acme's requests are checked in Redis (its window is still full from the test before, so
    # each one that reached Redis would be refused: a 200 means it was admitted unchecked).
    def limited(n: int) -> int:
        started = time.monotonic()
        code = httpx.post(
            f"{fleet.url(n % 3)}/v1/chat/completions",
            json=chat(model="assistant"),
            headers={"Authorization": f"Bearer {ACME_KEY}"},
            timeout=30,
        ).status_code
        latencies.append(time.monotonic() - started)
        return code

    fleet.redis.signal(signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(limited, range(120)))
    finally:
        fleet.redis.signal(signal.SIGCONT)
    assert set(codes) == {200}, codes
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert p99 < 0.5, f"p99 {p99 * 1000:.0f} ms, median {statistics.median(latencies) * 1000:.0f} ms"
    errors = sum(metric(fleet.url(i), "lora_router_quota_backend_errors_total", AUTH) for i in range(3))
    assert errors >= 120
    # Back: every router reaches it again within a probe interval or two.
    for i in range(3):
        wait_until(lambda i=i: httpx.get(f"{fleet.url(i)}/readyz").json()["checks"]["store"]["ok"], timeout=10)


def test_a_redis_that_lost_its_data_gets_it_back(fleet):
    """Redis restarted without persistence: the routers write back what they know."""
    fleet.redis.stop()
    fleet.redis.start()
    wait_until(lambda: "fresh-lora" in fleet.redis.cli("HKEYS", "lora-router:records:adapters"), timeout=15)
    wait_until(lambda: "late" in fleet.redis.cli("HKEYS", "lora-router:records:tenants"), timeout=15)
    wait_until(lambda: "acme-v2" in fleet.redis.cli("HKEYS", "lora-router:records:experiments"), timeout=15)
    for i in range(3):
        assert fresh(fleet.url(i)).status_code == 200


def test_sigterm_drains_long_streams(fleet, tmp_path):
    """20 streams of about two seconds in flight on a router told to stop: /readyz fails at
    once, every stream completes with exactly the events it would have had, and the process
    exits 0."""
    slow = start_sim({n: fleet.paths[n] for n in ADAPTERS}, extra=["--itl-ms", "60", "--ttft-ms", "5"])
    cfg = base_config([("slow", slow.port)])
    cfg["redis"] = fleet.redis.section(prefix="drain-test")
    cfg["server"] = {"drain_delay_s": 1, "timeouts": {"drain_s": 20}}
    router = start_router(write_config(tmp_path / "drain.yaml", cfg), env=fleet.env)
    try:
        wait_until(lambda: httpx.get(f"{router.url}/readyz").status_code == 200, timeout=20)
        body = chat(model="technical-lora", stream=True, max_tokens=30)
        expected = stream_contents(httpx.post(f"{slow.url}/v1/chat/completions", json=body, timeout=30).text)
        results: list[str] = []

        def stream(_: int) -> None:
            with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as r:
                results.append("".join(r.iter_text()))

        with ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(stream, n) for n in range(20)]
            wait_until(lambda: metric(router.url, "lora_router_backend_inflight") >= 20, timeout=10)
            router.p.send_signal(signal.SIGTERM)
            wait_until(lambda: httpx.get(f"{router.url}/readyz").status_code == 503, timeout=2)
            for f in futures:
                f.result()
        assert router.p.wait(30) == 0
        assert len(results) == 20
        for text in results:
            assert text.endswith("data: [DONE]\n\n")
            assert stream_contents(text) == expected
        assert "draining" in router.log()
    finally:
        router.stop()
        slow.stop()


def stream_contents(sse: str) -> list[str]:
    """The content deltas and finish reasons of a chat stream, in order."""
    out = []
    for line in sse.splitlines():
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            assert "error" not in event, event
            for choice in event.get("choices", []):
                out.append(choice["delta"].get("content") or choice.get("finish_reason") or "")
    return out
