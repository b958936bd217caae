"""Tokenizers: raw bytes, a byte-level BPE trained with HF `tokenizers`, or a pretrained model's own.

All of them expose the same small interface (``vocab_size``, ``eot_id``, ``encode_batch``,
``decode``, ``save``); ``load_tokenizer(spec)`` rebuilds one from what ``save`` wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

EOT = "<|endoftext|>"


class ByteTokenizer:
    """UTF-8 bytes (0..255) plus one end-of-text id (256): needs no training, good for tests."""

    kind = "byte"
    vocab_size = 257
    eot_id = 256

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(t.encode("utf-8")) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def save(self, folder: Path) -> dict:
        return {"kind": self.kind}


class HFTokenizer:
    """A `tokenizers.Tokenizer` (a BPE we trained, or any tokenizer.json)."""

    kind = "tokenizer.json"

    def __init__(self, tokenizer, eot_token: str = EOT):
        self.tok = tokenizer
        self.eot_id = tokenizer.token_to_id(eot_token)
        if self.eot_id is None:
            raise ValueError(f"the tokenizer has no end-of-text token {eot_token!r}")
        self.vocab_size = tokenizer.get_vocab_size()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode(list(ids))

    def save(self, folder: Path) -> dict:
        self.tok.save(str(folder / "tokenizer.json"))
        return {"kind": self.kind, "path": "tokenizer.json", "eot_token": self.tok.id_to_token(self.eot_id)}


class PretrainedTokenizer:
    """A pretrained model's tokenizer through transformers (hub id, folder, or "smollm2-135m" from its GGUF)."""

    kind = "pretrained"

    def __init__(self, name: str):
        from transformers import AutoTokenizer

        self.name = name
        if name.lower() == "smollm2-135m":
            from ..models.hf import smollm2_gguf_path

            path = smollm2_gguf_path()
            self.tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        elif name.endswith(".gguf"):
            self.tok = AutoTokenizer.from_pretrained(str(Path(name).parent), gguf_file=Path(name).name)
        else:
            self.tok = AutoTokenizer.from_pretrained(name)
        eot = self.tok.eos_token_id
        self.eot_id = int(eot) if eot is not None else 0
        self.vocab_size = len(self.tok)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.tok(texts, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode(list(ids))

    def save(self, folder: Path) -> dict:
        return {"kind": self.kind, "name": self.name}


def train_bpe(texts: Iterable[str], vocab_size: int, show_progress: bool = True) -> HFTokenizer:
    """A byte-level BPE (GPT-2 style pre-tokenization) with one special token, <|endoftext|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 257 + 1:
        raise ValueError(f"data.vocab_size={vocab_size} is too small for a byte-level BPE (needs >= 258)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=show_progress,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return HFTokenizer(tok)


def load_tokenizer(spec: dict, folder: Path | None = None):
    """The tokenizer that ``save`` described (spec) with its files in folder."""
    kind = spec.get("kind")
    if kind == "byte":
        return ByteTokenizer()
    if kind == "tokenizer.json":
        from tokenizers import Tokenizer

        path = Path(spec["path"]) if folder is None else Path(folder) / spec["path"]
        return HFTokenizer(Tokenizer.from_file(str(path)), spec.get("eot_token", EOT))
    if kind == "pretrained":
        return PretrainedTokenizer(spec["name"])
    raise ValueError(f"unknown tokenizer spec {json.dumps(spec)}")


def tokenizer_from_name(name: str):
    """"byte", a tokenizer.json path, or a pretrained name/path; "bpe" needs training (see train_bpe)."""
    if name == "byte":
        return ByteTokenizer()
    if name.endswith(".json"):
        if not Path(name).is_file():
            raise FileNotFoundError(f"no tokenizer file {name}")
        return load_tokenizer({"kind": "tokenizer.json", "path": name})
    return PretrainedTokenizer(name)
