"""ONNX graphs built with numpy and onnx alone (no torch): a BERT/XLM-R encoder with masked
mean pooling and L2 normalisation (the contract every lora-router encoder meets: inputs
``input_ids`` and ``attention_mask``, output ``sentence_embedding`` [batch, dim]), pooling
added to exports that return per-token states, and a linear classification head.

The encoder's layout keeps the operator count low, which is what short inputs pay for: Q, K
and V come from one MatMul (one dynamic quantisation of the input instead of three) and are
split afterwards; the 1/sqrt(head_dim) attention scale is folded into the Q weights; GELU is
the erf form and each residual Add feeds a LayerNormalization, which ONNX Runtime fuses into
Gelu and SkipLayerNormalization."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=f"{op_type}_{len(self.nodes)}", **attrs))
        return output


def bert_encoder(w: dict, heads: int, eps: float, name: str = "encoder") -> onnx.ModelProto:
    hidden = w["ln"][0].shape[0]
    head_dim = hidden // heads
    b = _Builder()
    c = b.const
    c("word_embeddings", w["word"].astype(np.float32))
    c("position_embeddings", w["position"].astype(np.float32))
    c("token_type_embedding", w["token_type"].astype(np.float32))
    c("emb_ln_w", w["ln"][0])
    c("emb_ln_b", w["ln"][1])
    c("i64_0", np.array(0, np.int64))
    c("i64_1", np.array(1, np.int64))
    c("axes_1", np.array([1], np.int64))
    c("axes_2", np.array([2], np.int64))
    c("axes_1_2", np.array([1, 2], np.int64))
    c("f_1", np.array(1.0, np.float32))
    c("f_half", np.array(0.5, np.float32))
    c("f_sqrt2", np.array(math.sqrt(2.0), np.float32))
    c("f_mask_value", np.array(-10000.0, np.float32))
    c("f_count_floor", np.array(1e-9, np.float32))
    c("f_norm_floor", np.array(1e-12, np.float32))
    c("shape_split_heads", np.array([0, 0, heads, head_dim], np.int64))
    c("shape_merge_heads", np.array([0, 0, hidden], np.int64))

    seq_len = b.op("Gather", [b.op("Shape", ["input_ids"]), "i64_1"], axis=0)
    positions = b.op("Gather", ["position_embeddings", b.op("Range", ["i64_0", seq_len, "i64_1"])])
    words = b.op("Gather", ["word_embeddings", "input_ids"])
    emb = b.op("Add", [b.op("Add", [words, positions]), "token_type_embedding"])
    x = b.op("LayerNormalization", [emb, "emb_ln_w", "emb_ln_b"], axis=-1, epsilon=eps)
    mask = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    additive_mask = b.op("Mul", [b.op("Sub", ["f_1", b.op("Unsqueeze", [mask, "axes_1_2"])]), "f_mask_value"])

    for i, layer in enumerate(w["layers"]):

        def dense(inp: str, key: str, i: int = i, layer: dict = layer) -> str:
            weight, bias = layer[key]
            c(f"l{i}_{key}_w", np.ascontiguousarray(weight.T.astype(np.float32)))
            c(f"l{i}_{key}_b", bias.astype(np.float32))
            return b.op("Add", [b.op("MatMul", [inp, f"l{i}_{key}_w"]), f"l{i}_{key}_b"])

        def split(inp: str, perm: list[int]) -> str:
            return b.op("Transpose", [b.op("Reshape", [inp, "shape_split_heads"])], perm=perm)

        scale = 1.0 / math.sqrt(head_dim)
        (wq, bq), (wk, bk), (wv, bv) = layer["q"], layer["k"], layer["v"]
        c(f"l{i}_qkv_w", np.ascontiguousarray(np.concatenate([wq * scale, wk, wv]).T.astype(np.float32)))
        c(f"l{i}_qkv_b", np.concatenate([bq * scale, bk, bv]).astype(np.float32))
        c(f"l{i}_qkv_split", np.array([hidden, hidden, hidden], np.int64))
        qkv = b.op("Add", [b.op("MatMul", [x, f"l{i}_qkv_w"]), f"l{i}_qkv_b"])
        parts = [f"l{i}_{n}_proj" for n in ("q", "k", "v")]
        split_node = helper.make_node("Split", [qkv, f"l{i}_qkv_split"], parts, name=f"Split_{len(b.nodes)}", axis=-1)
        b.nodes.append(split_node)
        q = split(parts[0], [0, 2, 1, 3])
        k = split(parts[1], [0, 2, 3, 1])
        v = split(parts[2], [0, 2, 1, 3])
        scores = b.op("Add", [b.op("MatMul", [q, k]), additive_mask])
        context = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
        context = b.op("Reshape", [b.op("Transpose", [context], perm=[0, 2, 1, 3]), "shape_merge_heads"])
        c(f"l{i}_aln_w", layer["aln"][0])
        c(f"l{i}_aln_b", layer["aln"][1])
        x = b.op(
            "LayerNormalization",
            [b.op("Add", [dense(context, "ao"), x]), f"l{i}_aln_w", f"l{i}_aln_b"],
            axis=-1,
            epsilon=eps,
        )
        mid = dense(x, "fi")
        gelu = b.op(
            "Mul", [b.op("Mul", [mid, "f_half"]), b.op("Add", [b.op("Erf", [b.op("Div", [mid, "f_sqrt2"])]), "f_1"])]
        )
        c(f"l{i}_oln_w", layer["oln"][0])
        c(f"l{i}_oln_b", layer["oln"][1])
        x = b.op(
            "LayerNormalization",
            [b.op("Add", [dense(gelu, "fo"), x]), f"l{i}_oln_w", f"l{i}_oln_b"],
            axis=-1,
            epsilon=eps,
        )

    _pool(b, x, mask)
    graph = helper.make_graph(
        b.nodes,
        name,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lora-router")
    model.ir_version = 8
    return model


def _pool(b: _Builder, states: str, mask_f: str) -> str:
    """Masked mean over the sequence, then L2 normalisation, into ``sentence_embedding``."""
    m3 = b.op("Unsqueeze", [mask_f, "axes_2"])
    summed = b.op("ReduceSum", [b.op("Mul", [states, m3]), "axes_1"], keepdims=0)
    count = b.op("Max", [b.op("ReduceSum", [m3, "axes_1"], keepdims=0), "f_count_floor"])
    mean = b.op("Div", [summed, count])
    # sqrt(sum(x^2)) rather than ReduceL2, whose axes moved from attribute to input in opset 18.
    squares = b.op("ReduceSum", [b.op("Mul", [mean, mean]), "axes_1"], keepdims=1)
    norm = b.op("Max", [b.op("Sqrt", [squares]), "f_norm_floor"])
    return b.op("Div", [mean, norm], "sentence_embedding")


def add_pooling(model: onnx.ModelProto, states_output: str, hidden: int) -> onnx.ModelProto:
    """Makes an export that returns per-token states (e.g. ``last_hidden_state``) return
    ``sentence_embedding`` instead."""
    b = _Builder()
    b.const("axes_1", np.array([1], np.int64))
    b.const("axes_2", np.array([2], np.int64))
    b.const("f_count_floor", np.array(1e-9, np.float32))
    b.const("f_norm_floor", np.array(1e-12, np.float32))
    mask = b.op("Cast", ["attention_mask"], "pool_mask", to=TensorProto.FLOAT)
    _pool(b, states_output, mask)
    g = model.graph
    g.node.extend(b.nodes)
    g.initializer.extend(b.inits)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden]))
    return model


def add_classifier_head(model: onnx.ModelProto, weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """Appends ``logits = sentence_embedding @ weight + bias`` ([dim, labels]) and makes the
    logits the only output: a sequence classifier in the layout the domain signal loads."""
    g = model.graph
    g.initializer.extend(
        [
            numpy_helper.from_array(weight.astype(np.float32), "head_weight"),
            numpy_helper.from_array(bias.astype(np.float32), "head_bias"),
        ]
    )
    g.node.extend(
        [
            helper.make_node("MatMul", ["sentence_embedding", "head_weight"], ["head_matmul"], name="head_matmul"),
            helper.make_node("Add", ["head_matmul", "head_bias"], ["logits"], name="head_add"),
        ]
    )
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", weight.shape[1]]))
    return model


def reference_forward(w: dict, heads: int, eps: float, ids: list[int]) -> np.ndarray:
    """The same encoder in plain numpy, for checking a built graph."""
    hidden = w["ln"][0].shape[0]
    hd = hidden // heads
    erf = np.frompyfunc(math.erf, 1, 1)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * p[0] + p[1]

    def dense(x, p):
        return x @ p[0].T + p[1]

    x = ln(w["word"][ids] + w["position"][: len(ids)] + w["token_type"], w["ln"])
    for layer in w["layers"]:
        q, k, v = (dense(x, layer[n]).reshape(-1, heads, hd).transpose(1, 0, 2) for n in ("q", "k", "v"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        x = ln(x + dense((s @ v).transpose(1, 0, 2).reshape(-1, hidden), layer["ao"]), layer["aln"])
        mid = dense(x, layer["fi"])
        mid = 0.5 * mid * (1 + erf(mid / math.sqrt(2)).astype(np.float32))
        x = ln(x + dense(mid, layer["fo"]), layer["oln"])
    e = x.mean(0)
    return e / np.linalg.norm(e)
