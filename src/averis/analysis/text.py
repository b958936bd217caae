"""Text for the analysis: a corpus file or the user's files, tokenized into fixed (batch x seq) blocks."""

from __future__ import annotations

import lzma
from pathlib import Path

import torch


def read_texts(paths: list[str] | None = None, corpus: str = "austen", max_chars: int = 400_000) -> str:
    """Text of the given files (plain or .xz), else of one offline corpus file, cut to max_chars."""
    if not paths:
        from ..data.sources import corpus_text

        return corpus_text(corpus, max_chars)
    parts = []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"no text file at {p}")
        opener = lzma.open if p.suffix == ".xz" else open
        with opener(p, "rt", encoding="utf-8", errors="replace") as f:
            parts.append(f.read(max_chars))
    return "\n\n".join(parts)[:max_chars]


def encode(tokenizer, text: str) -> list[int]:
    """Token ids from a transformers or `tokenizers` tokenizer (``encode``) or one of averis.data's
    (``encode_batch``)."""
    if hasattr(tokenizer, "encode"):
        ids = tokenizer.encode(text)
    elif hasattr(tokenizer, "encode_batch"):
        ids = tokenizer.encode_batch([text])[0]
    else:
        raise TypeError(f"cannot tokenize with a {type(tokenizer).__name__}: give a tokenizer with encode() "
                        f"or encode_batch()")
    return list(getattr(ids, "ids", ids))  # tokenizers.Tokenizer returns an Encoding


def token_batches(ids: list[int] | torch.Tensor, tokens: int, seq_len: int, batch_size: int = 1) -> list[torch.Tensor]:
    """The first ``tokens`` ids as blocks of (batch_size x seq_len); tokens must be a multiple of seq_len."""
    if tokens < seq_len or tokens % seq_len:
        raise ValueError(f"tokens={tokens} must be a positive multiple of seq_len={seq_len}")
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.numel() < tokens:
        raise ValueError(f"too few tokens: the text has {ids.numel()} tokens, {tokens} were asked for; "
                         f"give more text or ask for fewer tokens")
    rows = ids[:tokens].reshape(-1, seq_len)
    return list(rows.split(batch_size))


def text_batches(tokenizer, *, tokens: int, seq_len: int, batch_size: int = 1, paths: list[str] | None = None,
                 corpus: str = "austen") -> list[torch.Tensor]:
    """Tokenized text as (batch x seq) blocks: enough characters are read for ``tokens`` tokens."""
    max_chars = max(40_000, tokens * 12)  # English BPE: about 4 characters a token, so this is ample
    return token_batches(encode(tokenizer, read_texts(paths, corpus, max_chars)), tokens, seq_len, batch_size)
