"""The vLLM simulator: a TEST AND DEMO TOOL, not an inference engine. It answers like a
vLLM OpenAI server with LoRA enabled (see rust/sim/mod.rs for what it models)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from . import _native


@dataclass
class SimulatorOptions:
    served_model_name: str = "sim-base"
    model_path: str | None = None
    lora_modules: dict[str, str] = field(default_factory=dict)
    max_loras: int = 1
    max_lora_rank: int = 16
    max_model_len: int = 2048
    max_num_seqs: int = 256
    allow_runtime_lora_updating: bool = False
    ttft_ms: float = 5.0
    itl_ms: float = 1.0
    lora_load_ms: float = 20.0
    default_max_tokens: int = 16
    record_requests: int = 256

    def native_config(self) -> str:
        d = asdict(self)
        d["model_path"] = self.model_path or self.served_model_name
        d["lora_modules"] = list(self.lora_modules.items())
        return json.dumps(d)


class Simulator:
    """A simulated vLLM server on the native runtime.

    >>> sim = Simulator(SimulatorOptions(lora_modules={"a": "/adapters/a"}))  # doctest: +SKIP
    >>> sim.start("127.0.0.1", 0)                                             # doctest: +SKIP
    ('127.0.0.1', 40123)
    """

    def __init__(self, options: SimulatorOptions | None = None, *, threads: int = 0):
        self.options = options or SimulatorOptions()
        self._native = _native.Simulator(self.options.native_config(), threads)
        self.address: tuple[str, int] | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.address = self._native.start(host, port)
        return self.address

    @property
    def url(self) -> str:
        if self.address is None:
            raise RuntimeError("the simulator is not running")
        return f"http://{self.address[0]}:{self.address[1]}"

    def stats(self) -> dict[str, float]:
        return dict(self._native.stats())

    def stop(self) -> None:
        self._native.stop()
        self.address = None
