"""A router's life as an operator sees it: probes that tell the truth (`/livez`, `/readyz`,
HEAD for load balancers), reloads that say what they applied and never stall or kill the
router, and a shutdown that ends every stream cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support import base_config, chat, lora_router, start_router, start_sim, wait_until, write_config

ADMIN = "lifecycle-admin"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
ENV = {"LORA_ROUTER_ADMIN_KEY": ADMIN}


@pytest.fixture
def slow_sim(adapters):
    p = start_sim(adapters, extra=["--itl-ms", "100", "--ttft-ms", "5"])
    yield p
    p.stop()


def test_probes_tell_the_truth(sim, tmp_path):
    path = write_config(tmp_path / "c.yaml", base_config([("vllm-0", sim.port)]))
    router = start_router(path, env=ENV)
    try:
        assert httpx.get(f"{router.url}/livez").json() == {"status": "alive"}
        wait_until(lambda: httpx.get(f"{router.url}/readyz").status_code == 200)
        checks = httpx.get(f"{router.url}/readyz").json()["checks"]
        assert {k: v["ok"] for k, v in checks.items()} == {
            "draining": True,
            "replicas": True,
            "state": True,
            "store": True,
        }
        # Load balancers that probe with HEAD get the same status, without a body.
        for path in ("/health", "/livez", "/readyz", "/v1/models"):
            r = httpx.head(f"{router.url}{path}")
            assert r.status_code == 200 and r.content == b"", path
        assert httpx.request("DELETE", f"{router.url}/health").status_code == 405
    finally:
        router.stop()


def test_not_ready_without_a_healthy_replica(adapters, tmp_path):
    lone = start_sim(adapters)
    path = write_config(tmp_path / "c.yaml", base_config([("vllm-0", lone.port)]))
    router = start_router(path)
    try:
        wait_until(lambda: httpx.get(f"{router.url}/readyz").status_code == 200)
        lone.stop()
        wait_until(lambda: httpx.get(f"{router.url}/readyz").status_code == 503)
        body = httpx.get(f"{router.url}/readyz").json()
        assert body["checks"]["replicas"] == {"ok": False, "detail": "0 of 1 healthy"}
        # Alive all the same: liveness never depends on a replica.
        assert httpx.get(f"{router.url}/livez").status_code == 200
    finally:
        router.stop()


def test_streams_still_open_when_the_drain_time_runs_out_end_with_an_error_event(slow_sim, tmp_path):
    cfg = base_config([("vllm-0", slow_sim.port)])
    cfg["server"].update(drain_delay_s=0, timeouts={"drain_s": 1})
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    bodies: list[str] = []

    def stream() -> None:
        body = chat(model="technical-lora", stream=True, max_tokens=60)  # about six seconds
        with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as r:
            bodies.append("".join(r.iter_text()))

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(stream) for _ in range(4)]
        time.sleep(0.8)
        started = time.monotonic()
        router.p.send_signal(signal.SIGTERM)
        for f in futures:
            f.result()
    assert router.p.wait(10) == 0
    assert time.monotonic() - started < 5
    for text in bodies:
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        final = json.loads(events[-2])
        assert final["error"]["code"] == 503 and "drain time ran out" in final["error"]["message"]


def test_reload_says_what_it_applied_and_keeps_what_needs_a_restart(sim, tmp_path):
    cfg = base_config([("vllm-0", sim.port)])
    path = write_config(tmp_path / "c.yaml", cfg)
    router = start_router(path, env=ENV)
    try:
        before = httpx.get(f"{router.url}/admin/config", headers=AUTH).json()
        cfg["categories"][0]["system_prompt"] = "You are a staff engineer."
        cfg["server"]["port"] = 1  # the listener stays where it is
        write_config(path, cfg)
        r = httpx.post(f"{router.url}/admin/reload", headers=AUTH)
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["applied"] == ["categories"]
        assert [x["setting"] for x in report["restart_required"]] == ["server.port"]
        after = httpx.get(f"{router.url}/admin/config", headers=AUTH).json()
        assert after["hash"] == report["hash"] != before["hash"]
        assert after["last_reload"]["applied"] == ["categories"]
        text = httpx.get(f"{router.url}/metrics").text
        assert f'lora_router_config_info{{hash="{after["hash"]}"}} 1' in text
        assert httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="python")).status_code == 200
        # A broken file is refused with the key named, and nothing changes.
        cfg["categories"][0]["model_scores"][0]["score"] = 7
        write_config(path, cfg)
        r = httpx.post(f"{router.url}/admin/reload", headers=AUTH)
        assert r.status_code == 400 and "categories[0].model_scores[0].score" in r.json()["error"]["message"]
        assert httpx.get(f"{router.url}/admin/config", headers=AUTH).json()["hash"] == after["hash"]
    finally:
        router.stop()


def test_a_deeply_nested_config_is_refused_on_sighup_and_the_router_lives(sim, tmp_path):
    path = write_config(tmp_path / "c.yaml", base_config([("vllm-0", sim.port)]))
    router = start_router(path)
    try:
        with path.open("a") as f:
            f.write("observability: {x: " + "[" * 5000 + "]" * 5000 + "}\n")
        router.p.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload of" in router.log() and "refused" in router.log())
        assert "nests deeper than 64 levels" in router.log()
        assert router.p.poll() is None
        assert httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="python")).status_code == 200
    finally:
        router.stop()


def alias_bomb(levels: int) -> str:
    lines = ["observability:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_sighups_never_stall_and_sigterm_never_waits_behind_them(sim, tmp_path):
    cfg = base_config([("vllm-0", sim.port)])
    cfg["server"]["drain_delay_s"] = 0
    path = write_config(tmp_path / "c.yaml", cfg)
    router = start_router(path)
    try:
        # A nine-line alias bomb is refused at once (it used to take 27 s to record lines).
        with path.open("a") as f:
            f.write(alias_bomb(9))
        started = time.monotonic()
        router.p.send_signal(signal.SIGHUP)
        wait_until(lambda: "aliases are expanded" in router.log(), timeout=5)
        assert time.monotonic() - started < 2
        # Twenty SIGHUPs, then SIGTERM: the router exits promptly.
        for _ in range(20):
            router.p.send_signal(signal.SIGHUP)
        started = time.monotonic()
        router.p.send_signal(signal.SIGTERM)
        assert router.p.wait(10) == 0
        assert time.monotonic() - started < 3
        # The reloads were coalesced, not run twenty times.
        assert router.log().count("reload of") < 20
    finally:
        router.stop()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"vllm_endpoints:\n  - {name: \xff}\n", "not UTF-8 text"),
        (b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nests deeper than 64 levels"),
        (alias_bomb(9).encode(), "aliases are expanded"),
    ],
)
def test_check_names_the_problem_without_a_traceback(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    r = subprocess.run(lora_router("check", "--config", str(path)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert str(path) in r.stderr and message in r.stderr
    assert "Traceback" not in r.stderr
