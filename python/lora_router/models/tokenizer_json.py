"""Writing a Hugging Face ``tokenizer.json`` for a SentencePiece Unigram vocabulary (XLM-R
style): Precompiled normalisation, collapsed runs of spaces, Metaspace, ``<s> $A </s>``.

The normalisation table comes as per-code-point rules; SentencePiece's trainer compiles such
rules (``normalization_rule_tsv``) into the ``precompiled_charsmap`` the ``Precompiled``
normaliser reads."""

from __future__ import annotations

import base64
import os
import tempfile


def _varint(b: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


def _fields(b: bytes):
    """(field number, value) of a serialized protobuf message: just enough to read a
    SentencePiece ModelProto without depending on protobuf."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i : i + n], i + n
        elif wire == 5:
            value, i = b[i : i + 4], i + 4
        elif wire == 1:
            value, i = b[i : i + 8], i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def compile_charsmap(rules: list[tuple[int, list[int]]]) -> bytes:
    """Compiles code point -> code points rules into SentencePiece's precompiled charsmap."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        tsv = os.path.join(tmp, "rules.tsv")
        with open(tsv, "w", encoding="ascii") as f:
            for cp, out in rules:
                f.write(f"{cp:x}\t{' '.join(f'{o:x}' for o in out)}\n")
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="ascii") as f:
            f.writelines(f"the quick brown fox jumps over the lazy dog {i}\n" for i in range(200))
        prefix = os.path.join(tmp, "m")
        spm.SentencePieceTrainer.train(
            input=corpus,
            model_prefix=prefix,
            vocab_size=40,
            hard_vocab_limit=False,
            model_type="unigram",
            normalization_rule_tsv=tsv,
            minloglevel=2,
        )
        with open(prefix + ".model", "rb") as f:
            proto = f.read()
    for number, value in _fields(proto):
        if number == 3:  # ModelProto.normalizer_spec
            for inner, charsmap in _fields(value):
                if inner == 2:  # NormalizerSpec.precompiled_charsmap
                    return bytes(charsmap)
    raise RuntimeError("SentencePiece wrote no precompiled charsmap")


def unigram_tokenizer(pieces: list[str], scores, unk_id: int, bos: str, eos: str, charsmap: bytes | None) -> dict:
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    normalizers = [{"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]
    if charsmap is not None:
        normalizers.insert(0, {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()})
    ids = {p: i for i, p in enumerate(pieces)}

    def special(t: str) -> dict:
        return {"SpecialToken": {"id": t, "type_id": 0}}

    def seq(x: str) -> dict:
        return {"Sequence": {"id": x, "type_id": 0}}

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        # No added tokens: "<s>" typed by a user is text, never a control token.
        "added_tokens": [],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special(bos), seq("A"), special(eos)],
            "pair": [special(bos), seq("A"), special(eos), special(eos), seq("B"), special(eos)],
            "special_tokens": {
                bos: {"id": bos, "ids": [ids[bos]], "tokens": [bos]},
                eos: {"id": eos, "ids": [ids[eos]], "tokens": [eos]},
            },
        },
        "decoder": metaspace,
        "model": {
            "type": "Unigram",
            "unk_id": unk_id,
            "vocab": [[p, float(s)] for p, s in zip(pieces, scores, strict=True)],
            "byte_fallback": False,
        },
    }
