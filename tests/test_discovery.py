"""Finding vLLM replicas by DNS, as a Kubernetes headless Service exposes its pods: a real DNS
server (dnsmasq) on loopback answers for the endpoint's name, simulators listen on 127.0.0.2,
127.0.0.3, ... on one port, and the test changes the records while load runs."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from support import Proc, chat, free_port, lora_router, make_adapters, start_router, wait_until, write_config

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq is not installed")

NAME = "vllm.fleet.test"
ADMIN = "discovery-admin"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
ADAPTERS = ["a-lora", "b-lora", "c-lora", "d-lora", "e-lora", "f-lora"]


class DNS:
    """dnsmasq answering only for the names in a hosts file, with TTL 0."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.hosts = root / "hosts"
        self.hosts.write_text("")
        self.hosts.chmod(0o644)
        # As the user running the test: dnsmasq started as root would otherwise become
        # nobody, who cannot read a file in the test's private temporary directory.
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        self.p = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
             f"--user={user}", f"--group={group}",
             f"--addn-hosts={self.hosts}", "--local-ttl=0", "--listen-address=127.0.0.1",
             "--bind-interfaces", f"--port={self.port}", f"--pid-file={root / 'dnsmasq.pid'}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(0.3)
        assert self.p.poll() is None, self.p.stderr.read() if self.p.stderr else ""

    def set(self, *ips: str) -> None:
        self.hosts.write_text("".join(f"{ip} {NAME}\n" for ip in ips))
        self.p.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


def sim_on(ip: str, port: int) -> Proc:
    args = ["sim", "--host", ip, "--port", str(port), "--served-model-name", "tiny-base", "--max-loras", "4"]
    return Proc(lora_router(*args, "--allow-runtime-lora-updating", "--itl-ms", "1", "--ttft-ms", "2"))


def replicas(url: str) -> dict[str, dict]:
    return {r["address"]: r for r in httpx.get(f"{url}/admin/replicas", headers=AUTH).json()["data"]}


def test_replicas_join_and_leave_with_their_dns_records_while_load_runs(tmp_path):
    paths = make_adapters(tmp_path, ADAPTERS)
    dns = DNS(tmp_path)
    port = free_port()
    sims = {ip: sim_on(ip, port) for ip in ("127.0.0.2", "127.0.0.3")}
    dns.set("127.0.0.2", "127.0.0.3")
    cfg = {
        "vllm_endpoints": [
            {"name": "vllm", "address": NAME, "port": port, "discovery": "dns", "refresh_s": 0.3, "max_loras": 4}
        ],
        "model_config": {"tiny-base": {"loras": [{"name": n, "path": paths[n]} for n in ADAPTERS]}},
        "default_model": "tiny-base",
        "categories": [{"name": "general", "model_scores": [{"model": "tiny-base", "score": 1.0}]}],
        "adapter_roots": [str(tmp_path / "adapters")],
        "fleet": {"nameservers": [f"127.0.0.1:{dns.port}"]},
        "placement": {"reconcile_interval_s": 0.3},
        "server": {"health_check": {"interval_s": 0.3, "timeout_s": 0.5}},
    }
    router = start_router(write_config(tmp_path / "c.yaml", cfg), env={"LORA_ROUTER_ADMIN_KEY": ADMIN})
    stop = threading.Event()
    results: list[int] = []

    def load() -> None:
        n = 0
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                model = ADAPTERS[n % len(ADAPTERS)] if n % 3 else "tiny-base"
                results.append(client.post(f"{router.url}/v1/chat/completions", json=chat(model=model)).status_code)
                n += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        wait_until(lambda: len(replicas(router.url)) == 2, timeout=10)
        wait_until(lambda: all(r["healthy"] for r in replicas(router.url).values()), timeout=10)
        assert set(replicas(router.url)) == {f"127.0.0.2:{port}", f"127.0.0.3:{port}"}
        for t in threads:
            t.start()
        time.sleep(1)

        # A third pod: it joins once probed, and its share of the adapters is loaded on it.
        sims["127.0.0.4"] = sim_on("127.0.0.4", port)
        dns.set("127.0.0.2", "127.0.0.3", "127.0.0.4")
        joined = f"127.0.0.4:{port}"
        wait_until(lambda: replicas(router.url).get(joined, {}).get("healthy") is True, timeout=10)
        homed = [
            a["name"]
            for a in httpx.get(f"{router.url}/admin/adapters", headers=AUTH).json()["data"]
            if a["homes"] == [f"vllm/{joined}"]
        ]
        assert homed, "the new replica is home to none of six adapters"

        def loaded() -> bool:
            served = httpx.get(f"http://{joined}/v1/models").json()["data"]
            return set(homed) <= {m["id"] for m in served}

        wait_until(loaded, timeout=10)
        wait_until(lambda: requests_served(joined) > 0, timeout=10)

        # A pod goes away: its record first (the endpoints controller), then the process.
        dns.set("127.0.0.3", "127.0.0.4")
        left = f"127.0.0.2:{port}"
        wait_until(lambda: left not in replicas(router.url), timeout=10)
        time.sleep(0.5)  # requests it had in flight finish
        sims.pop("127.0.0.2").stop()
        served_after = requests_served(f"127.0.0.3:{port}") + requests_served(joined)
        time.sleep(1)
        assert requests_served(f"127.0.0.3:{port}") + requests_served(joined) > served_after

        # The DNS server dies: lookups fail and the replicas stay as they were.
        dns.stop()
        time.sleep(1)
        assert set(replicas(router.url)) == {f"127.0.0.3:{port}", joined}
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(30)
        router.stop()
        dns.stop()
        for s in sims.values():
            s.stop()
    assert len(results) > 100
    assert set(results) == {200}, {c: results.count(c) for c in set(results)}
    assert "replica vllm/127.0.0.4" in router.log() and "joined" in router.log()


def requests_served(address: str) -> int:
    text = httpx.get(f"http://{address}/metrics").text
    lines = [x for x in text.splitlines() if x.startswith("vllm:request_success_total")]
    return sum(int(float(x.rsplit(" ", 1)[1])) for x in lines)
