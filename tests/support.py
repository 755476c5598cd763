"""Helpers for the end-to-end tests: real `lora-router sim` and `lora-router serve`
processes on free ports, adapter directories, and config files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

LISTEN_RE = re.compile(r"on http://([0-9.]+):(\d+)")


class Proc:
    """A child process that prints the address it listens on; stderr is kept for failures."""

    def __init__(self, args: list[str], ready_timeout: float = 30.0, env: dict[str, str] | None = None):
        self.args = args
        self.lines: list[str] = []
        full_env = {**os.environ, **(env or {})}
        self.p = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=full_env
        )
        found = threading.Event()
        self.host, self.port = "", 0

        def pump() -> None:
            assert self.p.stderr is not None
            for line in self.p.stderr:
                self.lines.append(line)
                m = LISTEN_RE.search(line)
                if m and not found.is_set():
                    self.host, self.port = m.group(1), int(m.group(2))
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + ready_timeout
        while not found.wait(0.05):
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{' '.join(args)} did not start:\n{self.log()}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int | None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def lora_router(*args: str) -> list[str]:
    return [sys.executable, "-m", "lora_router.cli", *args]


def key_hash(key: str) -> str:
    """The salted hash of a tenant key, as `lora-router keys hash` prints it."""
    out = subprocess.run(lora_router("keys", "hash", "-"), input=key + "\n", capture_output=True, text=True, check=True)
    return out.stdout.strip()


def make_adapters(root: Path, names: Iterable[str], base: str = "tiny-base", rank: int = 8) -> dict[str, str]:
    out = {}
    for name in names:
        d = root / "adapters" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "adapter_config.json").write_text(
            json.dumps({"peft_type": "LORA", "base_model_name_or_path": base, "r": rank, "lora_alpha": 16})
        )
        out[name] = str(d)
    return out


def start_sim(
    adapters: dict[str, str] | None = None,
    *,
    name: str = "tiny-base",
    max_loras: int = 4,
    runtime_updates: bool = True,
    extra: Iterable[str] = (),
) -> Proc:
    args = ["sim", "--port", "0", "--served-model-name", name, "--max-loras", str(max_loras)]
    if adapters:
        args += ["--lora-modules", *(f"{k}={v}" for k, v in adapters.items())]
    if runtime_updates:
        args.append("--allow-runtime-lora-updating")
    return Proc(lora_router(*args, *extra))


def start_router(config_path: Path, *extra: str, env: dict[str, str] | None = None) -> Proc:
    return Proc(
        lora_router("serve", "--config", str(config_path), "--host", "127.0.0.1", "--port", "0", *extra), env=env
    )


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


def base_config(endpoints: list[tuple[str, int]], **overrides: Any) -> dict[str, Any]:
    """The issue's example config, on the given endpoints, with keyword rules and a few more
    categories for the tests."""
    cfg: dict[str, Any] = {
        "vllm_endpoints": [
            {"name": f"vllm-{i}", "address": "127.0.0.1", "port": port, "weight": 1}
            for i, (_, port) in enumerate(endpoints)
        ],
        "model_config": {
            "tiny-base": {
                "reasoning_family": "qwen3",
                "loras": [
                    {"name": "technical-lora", "description": "Programming"},
                    {"name": "medical-lora", "description": "Medicine"},
                    {"name": "legal-lora", "description": "Law"},
                ],
            }
        },
        "default_model": "tiny-base",
        "categories": [
            {
                "name": "technical",
                "description": "Programming questions",
                "system_prompt": "You are a senior software engineer.",
                "model_scores": [
                    {
                        "model": "tiny-base",
                        "lora_name": "technical-lora",
                        "score": 1.0,
                        "use_reasoning": True,
                        "reasoning_effort": "medium",
                    }
                ],
            },
            {
                "name": "medical",
                "system_prompt": "You are a doctor.",
                "system_prompt_mode": "insert",
                "model_scores": [{"model": "tiny-base", "lora_name": "medical-lora", "score": 0.9}],
            },
            {
                "name": "legal",
                "model_scores": [
                    {"model": "tiny-base", "lora_name": "legal-lora", "score": 0.95, "use_reasoning": False}
                ],
            },
            {"name": "general", "model_scores": [{"model": "tiny-base", "score": 0.8, "use_reasoning": False}]},
        ],
        "keyword_rules": [
            {"category": "technical", "keywords": ["python", "rust", "compile", "代码"]},
            {"category": "medical", "keywords": ["symptom", "symptoms", "doctor", "症状"]},
            {"category": "legal", "operator": "OR", "keywords": ["contract", "lawsuit", "合同"]},
        ],
        "server": {"health_check": {"interval_s": 0.2, "timeout_s": 0.5}},
    }
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def register_adapter(
    url: str, auth: dict[str, str], name: str, path: str, base_model: str, timeout: float = 30
) -> httpx.Response:
    """`POST /admin/adapters` on the router at `url`."""
    body = {"name": name, "path": path, "base_model": base_model}
    return httpx.post(f"{url}/admin/adapters", headers=auth, json=body, timeout=timeout)


def chat(model: str = "MoM", text: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 4, **fields}


def last_upstream(sim: Proc) -> dict[str, Any]:
    """The last request body the simulator received."""
    reqs = httpx.get(f"{sim.url}/sim/requests").json()["requests"]
    assert reqs, "the simulator received nothing"
    return reqs[-1]["body"]


def upstream_count(sim: Proc) -> int:
    return len(httpx.get(f"{sim.url}/sim/requests").json()["requests"])


def metric(url: str, name: str, headers: dict[str, str] | None = None) -> float:
    text = httpx.get(f"{url}/metrics", headers=headers).text
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    if not found:
        raise KeyError(name)
    return total


def wait_until(cond, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


ROOT = Path(__file__).resolve().parent.parent
FIXTURE_ENCODER = ROOT / "tests" / "fixtures" / "tiny-encoder"


def domain_rows(split: str | None = None, lang: str | None = None) -> list[dict]:
    """The bilingual six-domain set (benches/data/domains_en_zh.jsonl)."""
    rows = [json.loads(line) for line in (ROOT / "benches" / "data" / "domains_en_zh.jsonl").read_text().splitlines()]
    return [r for r in rows if (split is None or r["split"] == split) and (lang is None or r["lang"] == lang)]


def domain_config(endpoints: list[tuple[str, int]], **overrides: Any) -> dict[str, Any]:
    """Six categories (five adapters and a general base-model category) whose examples come
    from the training half of the domain set, in English and Chinese."""
    labels = sorted({r["label"] for r in domain_rows()})
    adapters = [f"{lab}-lora" for lab in labels if lab != "general"]
    cfg: dict[str, Any] = {
        "vllm_endpoints": [
            {"name": f"vllm-{i}", "address": "127.0.0.1", "port": port} for i, (_, port) in enumerate(endpoints)
        ],
        "model_config": {"tiny-base": {"loras": [{"name": a} for a in adapters]}},
        "default_model": "tiny-base",
        "categories": [
            {
                "name": lab,
                "examples": [r["text"] for r in domain_rows("train") if r["label"] == lab],
                "model_scores": [
                    {"model": "tiny-base", **({"lora_name": f"{lab}-lora"} if lab != "general" else {}), "score": 1.0}
                ],
            }
            for lab in labels
        ],
        "server": {"health_check": {"interval_s": 0.5}},
    }
    cfg.update(overrides)
    return cfg


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def train_classifier(out: Path, rows: list[dict], encoder: str | Path = FIXTURE_ENCODER) -> Path:
    """A real domain classifier made with `lora-router train` (on the tiny fixture encoder by
    default, for speed)."""
    cfg = out.parent / f"{out.name}-train.yaml"
    write_config(
        cfg,
        {
            "vllm_endpoints": [{"name": "e", "address": "127.0.0.1", "port": 9}],
            "model_config": {"m": {}},
            "default_model": "m",
            "categories": [],
        },
    )
    data = write_jsonl(out.parent / f"{out.name}-train.jsonl", rows)
    r = subprocess.run(
        lora_router("train", "--config", str(cfg), "--labelled", str(data), "--out", str(out), "--model", str(encoder)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return out


MCP_SERVER = ROOT / "tests" / "mcp_server.py"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MCPHTTPServer:
    """tests/mcp_server.py over streamable HTTP on a fixed port (so it can come back on it)."""

    def __init__(self, port: int, env: dict[str, str] | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.p = subprocess.Popen(
            [sys.executable, str(MCP_SERVER), "--http", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        import socket

        def listening() -> bool:
            assert self.p.poll() is None, "the MCP server exited"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, timeout=30)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def mcp_config(sim_port: int, mcp: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The base config (without keyword rules) with an MCP classifier."""
    cfg = base_config([("vllm-0", sim_port)], keyword_rules=[], **overrides)
    cfg["classifier"] = {"mcp_category_model": {"enabled": True, "threshold": 0.5, "timeout_seconds": 2, **mcp}}
    return cfg


def stdio_mcp(**fields: Any) -> dict[str, Any]:
    return {"transport_type": "stdio", "command": "python", "args": [str(MCP_SERVER)], **fields}


def decision(resp: httpx.Response) -> dict[str, str]:
    """The router's decision headers, without the prefix."""
    prefix = "x-lora-router-"
    return {k[len(prefix) :]: v for k, v in resp.headers.items() if k.startswith(prefix)}


def tls_files(root: Path, *names: str) -> dict[str, Path]:
    """A throwaway CA and a certificate for ``names`` (default 127.0.0.1 and localhost), as
    PEM files: ``ca``, ``cert`` (the chain) and ``key``."""
    import trustme

    root.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert(*(names or ("127.0.0.1", "localhost")))
    files = {"ca": root / "ca.pem", "cert": root / "cert.pem", "key": root / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    leaf.private_key_pem.write_to_path(str(files["key"]))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(files["cert"]), append=i > 0)
    return files


class RedisServer:
    """A real redis-server on loopback, as a managed service would run it: TLS only, AUTH on
    (a default-user password and an ACL user for the routers), a database other than 0."""

    USER, PASSWORD, ADMIN_PASSWORD, DB = "fleet", "fleet-secret", "admin-secret", 3

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.tls = tls_files(root / "tls")
        conf = root / "redis.conf"
        conf.write_text(
            f"port 0\ntls-port {self.port}\nbind 127.0.0.1\n"
            f"tls-cert-file {self.tls['cert']}\ntls-key-file {self.tls['key']}\n"
            f"tls-ca-cert-file {self.tls['ca']}\ntls-auth-clients no\n"
            f'save ""\nappendonly no\ndir {root}\n'
            f"requirepass {self.ADMIN_PASSWORD}\nuser {self.USER} on >{self.PASSWORD} ~* &* +@all\n"
        )
        self.conf = conf
        self.p: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/{self.DB}"

    def env(self) -> dict[str, str]:
        """The environment a router's ``redis`` section names."""
        return {"FLEET_REDIS_USER": self.USER, "FLEET_REDIS_PASSWORD": self.PASSWORD}

    def section(self, **fields: Any) -> dict[str, Any]:
        """The routers' ``redis`` config section."""
        return {
            "url": self.url,
            "username_env": "FLEET_REDIS_USER",
            "password_env": "FLEET_REDIS_PASSWORD",
            "ca_file": str(self.tls["ca"]),
            **fields,
        }

    def start(self) -> None:
        self.p = subprocess.Popen(
            ["redis-server", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: self.cli("PING").strip() == "PONG", timeout=10)

    def cli(self, *args: str) -> str:
        cmd = ["redis-cli", "--tls", "--cacert", str(self.tls["ca"]), "-p", str(self.port)]
        cmd += ["--user", self.USER, "--pass", self.PASSWORD, "--no-auth-warning", "-n", str(self.DB), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout

    def signal(self, sig: int) -> None:
        assert self.p is not None
        self.p.send_signal(sig)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.kill()
            self.p.wait(10)
