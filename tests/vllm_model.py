"""Builds the real vLLM tier's model and adapters, offline, in the vLLM virtualenv (it needs
torch, transformers, tokenizers and peft; see tests/vllm_env.py and
../shared/reference/vllm-cpu.md):

- a tiny randomly initialised Llama (2 layers, hidden 128, head_dim 32, vocabulary 2,048)
  with a Metaspace BPE tokenizer trained on local text and a minimal chat template;
- PEFT LoRA adapters a, b, c, d, e, f (rank 8, q_proj and v_proj, random A and B, so each
  changes the output), `rank16` (rank 16, to provoke vLLM's rank error under
  --max-lora-rank 8) and `all-linear` (all seven linear layers).

    python tests/vllm_model.py <model dir> <adapters dir>
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{% elif m['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for part in m['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
ADAPTERS = ["a", "b", "c", "d", "e", "f"]


def corpus() -> list[str]:
    """Local text reduced to printable-ASCII words (every token then decodes cleanly)."""
    texts: list[str] = []
    sources = sorted(Path("/usr/share/common-licenses").glob("*")) + sorted(
        Path(sysconfig.get_paths()["stdlib"]).glob("*.py")
    )
    for p in sources:
        try:
            texts.append(re.sub(r"[^\x21-\x7e]+", " ", p.read_text(errors="ignore")))
        except OSError:
            continue
    if sum(len(t) for t in texts) < 100_000:
        texts.append("the quick brown fox jumps over the lazy dog " * 5000)
    return texts


def build_tokenizer(model_dir: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=2048, limit_alphabet=100, special_tokens=SPECIAL)
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(model_dir)
    # Older readers look for the template in tokenizer_config.json.
    import json

    cfg_path = model_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return fast


def build_model(model_dir: Path, tok) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1234)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        initializer_range=0.2,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(model_dir, safe_serialization=True)


def build_adapter(model_dir: Path, out: Path, seed: int, rank: int, targets: list[str]) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    base = LlamaForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=targets, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"
    )
    model = get_peft_model(base, lora)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # PEFT starts B at zero (a no-op adapter): random A and B make each one differ.
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    model.save_pretrained(out)


def main(model_dir: Path, adapters_dir: Path) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    adapters_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(model_dir)
    build_model(model_dir, tok)
    for i, name in enumerate(ADAPTERS):
        build_adapter(model_dir, adapters_dir / name, 1234 + 100 + i, 8, ["q_proj", "v_proj"])
    build_adapter(model_dir, adapters_dir / "rank16", 2000, 16, ["q_proj", "v_proj"])
    every = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    build_adapter(model_dir, adapters_dir / "all-linear", 3000, 8, every)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
