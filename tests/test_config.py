"""Configuration: Semantic Router's v0.1 LoRA routing schema accepted unchanged, and
errors that name the file, the key path and the line."""

import subprocess
import textwrap

import pytest
from support import lora_router

GUIDE_CONFIG = """\
classifier:
  category_model: {model_id: "models/mom-domain-classifier", threshold: 0.6, use_cpu: true,
                   category_mapping_path: "models/mom-domain-classifier/category_mapping.json"}
vllm_endpoints:
  - {name: "vllm-primary", address: "127.0.0.1", port: 8000, weight: 1}
model_config:
  "llama2-7b":
    reasoning_family: "llama2"
    preferred_endpoints: ["vllm-primary"]
    loras:
      - {name: "technical-lora", description: "Optimized for programming and technical questions"}
      - {name: "medical-lora", description: "Medical and health domain"}
default_model: "llama2-7b"
categories:
  - name: "technical"
    description: "Programming, software engineering and technical questions"
    system_prompt: "You are a senior software engineer."
    model_scores:
      - {model: "llama2-7b", lora_name: "technical-lora", score: 1.0, use_reasoning: true, reasoning_effort: "medium"}
  - name: "general"
    description: "General questions"
    model_scores:
      - {model: "llama2-7b", score: 0.8, use_reasoning: false}   # no lora_name: base model
keyword_rules:
  - category: "technical"
    operator: "OR"
    keywords: ["python", "rust", "代码"]
    case_sensitive: false
    whole_word: true
"""


def run_check(path, cwd=None):
    return subprocess.run(lora_router("check", "--config", str(path)), capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def guide_dir(tmp_path):
    """The guide's config beside the domain classifier it names, trained with `lora-router train`."""
    from support import domain_rows, train_classifier

    (tmp_path / "models").mkdir()
    rows = [
        {"text": r["text"], "label": r["label"]} for r in domain_rows("train") if r["label"] in ("technical", "general")
    ]
    train_classifier(tmp_path / "models" / "mom-domain-classifier", rows)
    (tmp_path / "config.yaml").write_text(GUIDE_CONFIG)
    return tmp_path


def test_guide_config_is_accepted_unchanged(guide_dir):
    r = run_check(guide_dir / "config.yaml")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "config OK" in out
    for word in ["vllm-primary", "llama2-7b", "technical-lora", "medical-lora", "technical", "general"]:
        assert word in out
    # The undefined reasoning family is a warning, not an error.
    assert "reasoning_family: 'llama2' is not defined" in out
    # The domain classifier it names is loaded, and the descriptions switch on the embedding classifier.
    assert "domain: " in out and "2 labels (2 are categories)" in out
    assert "embedding: multilingual-e5-small, 2 categories" in out
    assert "have a description but no examples" in out


def broken(tmp_path, yaml_text):
    p = tmp_path / "bad.yaml"
    p.write_text(textwrap.dedent(yaml_text))
    r = run_check(p)
    assert r.returncode != 0
    assert str(p) in r.stderr
    return r.stderr


MINIMAL = """\
vllm_endpoints:
  - {name: "e", address: "127.0.0.1", port: 8000}
model_config:
  "base":
    loras: [{name: "a-lora"}]
default_model: "base"
categories:
  - name: "general"
    model_scores: [{model: "base", score: 0.5}]
"""


def test_minimal_config_is_fine(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text(MINIMAL)
    assert run_check(p).returncode == 0


def test_undeclared_lora_name(tmp_path):
    err = broken(
        tmp_path, MINIMAL + '  - name: "x"\n    model_scores: [{model: "base", lora_name: "b-lora", score: 1}]\n'
    )
    assert "categories[1].model_scores[0].lora_name (line 11)" in err
    assert "'b-lora' is not declared under model_config.base.loras" in err


def test_unknown_endpoint(tmp_path):
    text = MINIMAL.replace(
        'loras: [{name: "a-lora"}]', 'preferred_endpoints: ["nowhere"]\n    loras: [{name: "a-lora"}]'
    )
    err = broken(tmp_path, text)
    assert "model_config.base.preferred_endpoints[0]" in err
    assert "unknown endpoint 'nowhere'" in err


def test_duplicate_category(tmp_path):
    err = broken(tmp_path, MINIMAL + '  - name: "general"\n    model_scores: [{model: "base", score: 0.1}]\n')
    assert "categories[1].name (line 10)" in err
    assert "duplicate category 'general'" in err


@pytest.mark.parametrize("score", ["1.5", "-0.1"])
def test_score_outside_unit_interval(tmp_path, score):
    err = broken(tmp_path, MINIMAL.replace("score: 0.5", f"score: {score}"))
    assert "categories[0].model_scores[0].score (line 9)" in err


def test_classifier_directory_without_onnx_is_refused(tmp_path):
    (tmp_path / "vsr-model").mkdir()
    (tmp_path / "vsr-model" / "config.json").write_text("{}")
    err = broken(tmp_path, MINIMAL + 'classifier:\n  category_model: {model_id: "vsr-model"}\n')
    assert "classifier.category_model.model_id" in err and "has no model.onnx" in err


def test_missing_classifier_model_path(tmp_path):
    err = broken(tmp_path, MINIMAL + 'classifier:\n  category_model: {model_id: "models/none", threshold: 0.6}\n')
    assert "classifier.category_model.model_id (line 11)" in err
    assert "path 'models/none' does not exist" in err


def test_typo_is_an_unknown_key(tmp_path):
    err = broken(tmp_path, MINIMAL.replace("default_model:", "defualt_model:"))
    assert "defualt_model (line 6): unknown key" in err
    assert "default_model: Field required" in err


def test_several_problems_reported_at_once(tmp_path):
    text = MINIMAL.replace('"general"', '"g"') + 'keyword_rules:\n  - {category: "nope", keywords: ["x"]}\n'
    text = text.replace('default_model: "base"', 'default_model: "missing"')
    err = broken(tmp_path, text)
    assert "default_model" in err and "keyword_rules[0].category" in err


def test_yaml_syntax_error_names_the_line(tmp_path):
    err = broken(tmp_path, MINIMAL + "categories: [unclosed\n")
    assert "line" in err


def test_missing_file(tmp_path):
    r = run_check(tmp_path / "none.yaml")
    assert r.returncode != 0
    assert "cannot read" in r.stderr


def test_serve_refuses_an_invalid_config(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(MINIMAL.replace("score: 0.5", "score: 2"))
    r = subprocess.run(
        lora_router("serve", "--config", str(p), "--port", "0"), capture_output=True, text=True, timeout=30
    )
    assert r.returncode != 0
    assert "categories[0].model_scores[0].score" in r.stderr


def test_python_api_raises_config_error(tmp_path):
    from lora_router import ConfigError, Router

    p = tmp_path / "bad.yaml"
    p.write_text(MINIMAL.replace('{model: "base"', '{model: "other"'))
    with pytest.raises(ConfigError) as e:
        Router(p)
    assert e.value.problems[0].path == "categories[0].model_scores[0].model"
    assert e.value.problems[0].line == 9
