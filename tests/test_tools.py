"""The classification tools: `lora-router classify`, `eval` and `train`."""

import json
import subprocess

import pytest
from support import FIXTURE_ENCODER, base_config, domain_config, domain_rows, lora_router, write_config, write_jsonl


@pytest.fixture(scope="module")
def domain_cfg(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("tools") / "c.yaml", domain_config([("vllm-0", 9)]))


def run(*args, **kw):
    return subprocess.run(lora_router(*args), capture_output=True, text=True, timeout=300, **kw)


def test_classify_one_text(domain_cfg):
    r = run("classify", "--config", str(domain_cfg), "我的程序一运行就报空指针异常")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["category"] == "technical" and d["adapter"] == "technical-lora" and d["model"] == "technical-lora"
    assert d["classifier"] == "embedding" and 0 < d["confidence"] <= 1


def test_classify_a_file_keeps_input_order(domain_cfg, tmp_path):
    rows = domain_rows("test")[::7]
    inp = write_jsonl(
        tmp_path / "in.jsonl", [{"text": r["text"], "id": i, "label": r["label"]} for i, r in enumerate(rows)]
    )
    r = run("classify", "--config", str(domain_cfg), "--input", str(inp))
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == len(rows)
    for d in out:
        for key in ("category", "confidence", "adapter", "model", "classifier"):
            assert key in d
    # In input order: each decision matches classifying its own line alone.
    single = json.loads(run("classify", "--config", str(domain_cfg), rows[5]["text"]).stdout)
    assert out[5]["category"] == single["category"]
    assert sum(d["category"] == r["label"] for d, r in zip(out, rows, strict=True)) >= len(rows) * 0.85


def test_classify_reports_bad_lines_and_goes_on(domain_cfg, tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "what is a derivative"}\nnot json\n{"nope": 1}\n{"text": "lease question"}\n')
    r = run("classify", "--config", str(domain_cfg), "--input", str(inp))
    assert r.returncode == 1
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [("error" in d) for d in out] == [False, True, True, False]
    assert out[1]["line"] == 2 and out[2]["line"] == 3
    assert "2 line(s)" in r.stderr


def test_eval_prints_accuracy_and_confusion(domain_cfg, tmp_path):
    labelled = write_jsonl(
        tmp_path / "l.jsonl", [{"text": r["text"], "label": r["label"]} for r in domain_rows("test")]
    )
    r = run("eval", "--config", str(domain_cfg), "--labelled", str(labelled))
    assert r.returncode == 0, r.stderr
    assert "accuracy:" in r.stdout and "confusion" in r.stdout and "threshold sweep" in r.stdout
    r = run("eval", "--config", str(domain_cfg), "--labelled", str(labelled), "--json")
    report = json.loads(r.stdout)
    assert report["examples"] == 240 and report["accuracy"] > 0.85
    assert set(report["per_category"]) >= {"technical", "medical", "legal", "finance", "math", "general"}
    assert sum(sum(row.values()) for row in report["confusion"].values()) == 240
    sweep = report["embedding_threshold_sweep"]
    assert sweep[0]["threshold"] == 0.0 and sweep[0]["fallback"] == 0.0
    assert sweep[-1]["fallback"] >= sweep[0]["fallback"]


def test_train_errors_name_the_line(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", base_config([("e", 9)]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    r = run(
        "train",
        "--config",
        str(cfg),
        "--labelled",
        str(bad),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(FIXTURE_ENCODER),
    )
    assert r.returncode == 2 and f"{bad}:2" in r.stderr
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}])
    r = run(
        "train",
        "--config",
        str(cfg),
        "--labelled",
        str(one),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(FIXTURE_ENCODER),
    )
    assert r.returncode == 2 and "at least two labels" in r.stderr
    assert not (tmp_path / "out").exists()


def test_train_reports_what_it_did(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", base_config([("e", 9)]))
    rows = [{"text": r["text"], "label": r["label"]} for r in domain_rows("train")]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    r = run("train", "--config", str(cfg), "--labelled", str(data), "--out", str(tmp_path / "clf"))
    assert r.returncode == 0, r.stderr
    assert "trained a 6-label classifier on 120 examples with multilingual-e5-small" in r.stdout
    report = json.loads((tmp_path / "clf" / "training.json").read_text())
    assert report["holdout_accuracy"] is not None and report["holdout_accuracy"] >= 0.8


def test_models_list():
    r = run("models", "list")
    assert r.returncode == 0 and "multilingual-e5-small" in r.stdout and "all-minilm-l6-v2" in r.stdout
