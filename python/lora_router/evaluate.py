"""``lora-router eval``: how a config classifies labelled text (accuracy, per-category
precision and recall, the confusion matrix), and how the embedding classifier's threshold
trades accuracy for fallbacks, so thresholds can be tuned before deploying."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from .router import Router
from .train import read_labelled

SWEEP = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def evaluate(router: Router, labelled: Path) -> dict[str, Any]:
    examples = read_labelled(labelled)
    default = router.plan["default_category"]
    rows = []
    started = time.monotonic()
    for e in examples:
        d = router.classify(e.text)
        rows.append((e.label, d))
    elapsed = time.monotonic() - started
    labels = sorted({lab for lab, _ in rows} | {d["category"] for _, d in rows})
    confusion = {t: {p: 0 for p in labels} for t in labels}
    for lab, d in rows:
        confusion[lab][d["category"]] += 1
    per_category = {}
    for c in labels:
        tp = confusion[c][c]
        predicted = sum(confusion[t][c] for t in labels)
        actual = sum(confusion[c].values())
        precision = tp / predicted if predicted else None
        recall = tp / actual if actual else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
        per_category[c] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    correct = sum(1 for lab, d in rows if lab == d["category"])
    return {
        "examples": len(rows),
        "accuracy": correct / len(rows),
        "default_category": default,
        "decided_by": dict(Counter(d["classifier"] for _, d in rows)),
        "truncated": sum(1 for _, d in rows if d.get("truncated")),
        "per_category": per_category,
        "confusion": confusion,
        "embedding_threshold_sweep": sweep(rows, default),
        "ms_per_text": round(elapsed * 1000 / len(rows), 2),
    }


def sweep(rows: list[tuple[str, dict]], default: str) -> list[dict[str, Any]] | None:
    """For texts the embedding classifier scored: accuracy and fallback share if its
    threshold were each value of SWEEP (margin unchanged at 0)."""
    scored = []
    for lab, d in rows:
        for s in d["signals"]:
            if s["signal"] == "embedding" and s.get("scores"):
                scored.append((lab, s["scores"][0]["category"], s["scores"][0]["probability"]))
    if not scored:
        return None
    out = []
    for t in SWEEP:
        chosen = [(lab, cat if p >= t else default) for lab, cat, p in scored]
        out.append(
            {
                "threshold": t,
                "accuracy": sum(lab == c for lab, c in chosen) / len(chosen),
                "fallback": sum(p < t for _, _, p in scored) / len(scored),
            }
        )
    return out


def render(report: dict[str, Any]) -> str:
    lines = [
        f"examples: {report['examples']}   accuracy: {report['accuracy']:.1%}   "
        f"decided by: {', '.join(f'{k} {v}' for k, v in sorted(report['decided_by'].items()))}   "
        f"({report['ms_per_text']} ms per text, {report['truncated']} truncated)",
        "",
        f"{'category':<24} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
    ]

    def pct(v):
        return f"{v:.1%}" if v is not None else "-"

    for c, m in report["per_category"].items():
        lines.append(f"{c:<24} {pct(m['precision']):>9} {pct(m['recall']):>7} {pct(m['f1']):>6} {m['support']:>8}")
    labels = list(report["confusion"])
    width = max(8, *(len(x) for x in labels))
    lines += [
        "",
        "confusion (rows: labelled, columns: decided)",
        " " * (width + 1) + " ".join(f"{x[:width]:>{width}}" for x in labels),
    ]
    for t in labels:
        lines.append(f"{t[:width]:<{width}} " + " ".join(f"{report['confusion'][t][p]:>{width}}" for p in labels))
    if report["embedding_threshold_sweep"]:
        lines += [
            "",
            f"embedding threshold sweep (below the threshold, '{report['default_category']}' serves):",
            "threshold  accuracy  fallback",
        ]
        for row in report["embedding_threshold_sweep"]:
            lines.append(f"{row['threshold']:>9.1f}  {row['accuracy']:>8.1%}  {row['fallback']:>8.1%}")
    return "\n".join(lines)
