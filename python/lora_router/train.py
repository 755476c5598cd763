"""``lora-router train``: a domain classifier from labelled examples, on CPU, in seconds.

The router's own encoder embeds the texts; a multinomial logistic-regression head is fitted
on the embeddings with numpy; the encoder graph plus the head is written as one ONNX
sequence classifier in Semantic Router's layout (model directory with the model, its
tokenizer and category_mapping.json), ready for ``classifier.category_model``."""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import LoadedConfig
from .config.plan import model_spec
from .errors import LoraRouterError
from .models import ModelDir, load_onnxruntime, resolve_encoder


class TrainingError(LoraRouterError):
    pass


@dataclass
class Example:
    text: str
    label: str


def read_labelled(path: Path) -> list[Example]:
    """``{"text": ..., "label": ...}`` per line; blank lines are skipped, anything else is an
    error that names the line."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TrainingError(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get("label"), str):
            raise TrainingError(f'{path}:{n}: expected {{"text": "...", "label": "..."}}')
        out.append(Example(row["text"], row["label"]))
    if not out:
        raise TrainingError(f"{path}: no examples")
    return out


def encoder(loaded: LoadedConfig, model: str | None) -> tuple[ModelDir, object]:
    from . import _native

    load_onnxruntime()
    md = resolve_encoder(model or loaded.config.classifier.embedding_model.model, loaded.base_dir)
    return md, _native.TextModel(json.dumps(model_spec(loaded.config, md)))


def fit_head(
    x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-3, epochs: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch Adam on standardised features; returns
    the weight and bias to apply to the raw features (the standardisation folded in)."""
    mu, sigma = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sigma
    n, d = z.shape
    w, b = np.zeros((d, classes)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    moments = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    lr, beta1, beta2 = 0.05, 0.9, 0.999
    for t in range(1, epochs + 1):
        logits = z @ w + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / n
        gw, gb = z.T @ grad + l2 * w, grad.sum(0)
        for i, (param, g) in enumerate(((w, gw), (b, gb))):
            m, v = moments[2 * i], moments[2 * i + 1]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            param -= lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + 1e-8)
    weight = w / sigma[:, None]
    bias = b - (mu / sigma) @ w
    return weight.astype(np.float32), bias.astype(np.float32)


def accuracy(weight: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(((x @ weight + bias).argmax(1) == y).mean())


def train(loaded: LoadedConfig, labelled: Path, out: Path, *, model: str | None = None, holdout: float = 0.1) -> dict:
    examples = read_labelled(labelled)
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise TrainingError(f"{labelled}: a classifier needs at least two labels, found {labels}")
    started = time.monotonic()
    md, tm = encoder(loaded, model)
    x = np.array(tm.embed([e.text for e in examples]), dtype=np.float32)
    y = np.array([labels.index(e.label) for e in examples])
    embedded = time.monotonic() - started

    # Accuracy on a held-out share first, then the head is refitted on everything.
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    cut = int(len(order) * holdout)
    held, kept = order[:cut], order[cut:]
    held_accuracy = None
    if cut >= len(labels):
        w, b = fit_head(x[kept], y[kept], len(labels))
        held_accuracy = accuracy(w, b, x[held], y[held])
    weight, bias = fit_head(x, y, len(labels))
    write_classifier(md, weight, bias, labels, out, loaded)
    report = {
        "examples": len(examples),
        "labels": labels,
        "encoder": md.name,
        "train_accuracy": accuracy(weight, bias, x, y),
        "holdout_accuracy": held_accuracy,
        "holdout_examples": cut if held_accuracy is not None else 0,
        "seconds_embedding": round(embedded, 2),
        "seconds_total": round(time.monotonic() - started, 2),
        "out": str(out),
    }
    (out / "training.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def write_classifier(
    md: ModelDir, weight: np.ndarray, bias: np.ndarray, labels: list[str], out: Path, loaded: LoadedConfig
) -> None:
    import onnx

    from .models.onnx_graph import add_classifier_head

    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    graph = add_classifier_head(onnx.load(str(md.model_file)), weight, bias)
    onnx.save(graph, str(staging / "model.onnx"))
    shutil.copy(md.tokenizer_file, staging / "tokenizer.json")
    mapping = {
        "category_to_idx": {lab: i for i, lab in enumerate(labels)},
        "idx_to_category": {str(i): lab for i, lab in enumerate(labels)},
    }
    (staging / "category_mapping.json").write_text(json.dumps(mapping, indent=2, ensure_ascii=False), encoding="utf-8")
    (staging / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["EncoderWithLinearHead"],
                "id2label": mapping["idx_to_category"],
                "label2id": mapping["category_to_idx"],
                "encoder": md.name,
            },
            indent=2,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    (staging / "lora_router_model.json").write_text(
        json.dumps(
            {
                "name": f"{md.name}+head",
                "kind": "classifier",
                "encoder": md.name,
                "labels": labels,
                "encoder_source": md.metadata.get("source"),
            },
            indent=2,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    notice = md.path / "NOTICE"
    if notice.is_file():
        shutil.copy(notice, staging / "NOTICE")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
