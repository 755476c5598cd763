"""A tiny random-weight encoder with the same I/O contract as the shipped ones (inputs
``input_ids``/``attention_mask``, output ``sentence_embedding``), for fast unit tests. It is
built from a seed, by the same graph builder, and weighs about 300 KB."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import numpy as np

from .onnx_graph import bert_encoder
from .tokenizer_json import unigram_tokenizer

WORDS = (
    "the a an and or of to in on for with is are was be this that what how why when where who can do does "
    "my your i you it not no yes code python rust java error compile bug test function data file server "
    "doctor symptom fever pain medicine health contract law court lease money bank loan tax invest math "
    "equation integral proof number hello thanks please help question answer"
).split()
CJK = (
    "我的你是不了人在有这个上们来到时大地为子中说生国年着就那和要她出也得里后自以会家可下而过天去能对小多"
    "然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动方期"
    "它头经长儿回位分爱老因很给名法间斯知世什两次使身者被高已亲其进此话常与活正感代码编译报错合同医生症状"
)


def build(out: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    pieces = list(specials)
    pieces += ["\u2581" + w for w in WORDS]
    pieces += ["\u2581", *string.ascii_letters, *string.digits, *string.punctuation, *CJK]
    pieces += ["<mask>"]
    scores = [0.0] * 4 + [-(3.0 + 0.01 * i) for i in range(len(pieces) - 5)] + [0.0]
    hidden, heads, ffn, layers, positions = 32, 2, 64, 2, 512

    def dense(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        scale = 1 / math.sqrt(cols)
        return (rng.normal(0, scale, (rows, cols)).astype(np.float32), rng.normal(0, 0.02, rows).astype(np.float32))

    def norm() -> tuple[np.ndarray, np.ndarray]:
        return np.ones(hidden, np.float32), np.zeros(hidden, np.float32)

    w = {
        "word": rng.normal(0, 0.5, (len(pieces), hidden)).astype(np.float32),
        "position": rng.normal(0, 0.1, (positions, hidden)).astype(np.float32),
        "token_type": rng.normal(0, 0.1, hidden).astype(np.float32),
        "ln": norm(),
        "layers": [
            {
                "q": dense(hidden, hidden),
                "k": dense(hidden, hidden),
                "v": dense(hidden, hidden),
                "ao": dense(hidden, hidden),
                "fi": dense(ffn, hidden),
                "fo": dense(hidden, ffn),
                "aln": norm(),
                "oln": norm(),
            }
            for _ in range(layers)
        ],
    }
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    onnx.save(bert_encoder(w, heads, 1e-12, name="tiny-encoder"), str(out / "model.onnx"))
    tok = unigram_tokenizer(pieces, scores, 3, "<s>", "</s>", None)
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False, indent=0), encoding="utf-8")
    (out / "lora_router_model.json").write_text(
        json.dumps(
            {
                "name": "tiny-encoder",
                "kind": "encoder",
                "description": f"random weights (seed {seed}), tests only",
                "dimension": hidden,
                "calibration": {
                    "temperature": 0.05,
                    "cosine_temperature": 0.05,
                    "threshold": 0.0,
                    "margin": 0.0,
                    "method": "centroid",
                    "k": 3,
                },
            },
            indent=2,
        ),
        encoding="utf-8",
    )
