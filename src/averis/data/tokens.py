"""Token files: a flat little-endian uint16/uint32 array (``NAME.bin``) plus a small JSON header (``NAME.json``).

Read with ``np.memmap``, so a corpus larger than memory costs nothing to open, and any
number of processes (DDP ranks, parallel runs) share the page cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..progress import progress_bar

FORMAT = "averis-tokens"
VERSION = 1


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def header_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def write_tokens(path: str | Path, tokens: np.ndarray, meta: dict) -> Path:
    """Write tokens and header atomically (tmp + rename: a killed writer never leaves a half file)."""
    path = Path(path).with_suffix(".bin")
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for_vocab(int(meta["vocab_size"]))
    if tokens.size and int(tokens.max()) >= meta["vocab_size"]:
        raise ValueError(f"token id {int(tokens.max())} >= vocab_size {meta['vocab_size']}")
    header = {"format": FORMAT, "version": VERSION, "dtype": dtype.name, "num_tokens": int(tokens.size), **meta}
    tmp = path.with_suffix(".bin.tmp")
    tokens.astype(dtype.newbyteorder("<"), copy=False).tofile(tmp)
    os.replace(tmp, path)
    _write_json(header_path(path), header)
    return path


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


class TokenFile:
    """A memory-mapped token file: ``len(tf)`` tokens, ``tf.tokens`` the array, ``tf.meta`` the header."""

    def __init__(self, path: str | Path):
        self.path = Path(path).with_suffix(".bin")
        head = header_path(self.path)
        if not head.is_file() or not self.path.is_file():
            raise FileNotFoundError(f"token file {self.path} (and its header {head.name}) not found")
        try:
            self.meta = json.loads(head.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"corrupt token header {head}: {err}") from err
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{head} is not an averis token header (format={self.meta.get('format')!r})")
        dtype = np.dtype(self.meta["dtype"]).newbyteorder("<")
        expected = self.meta["num_tokens"] * dtype.itemsize
        if self.path.stat().st_size != expected:
            raise ValueError(f"{self.path} has {self.path.stat().st_size} bytes but its header says "
                             f"{self.meta['num_tokens']} tokens of {dtype.name} ({expected} bytes): truncated?")
        self.tokens = np.memmap(self.path, dtype=dtype, mode="r") if expected else np.zeros(0, dtype)
        self.vocab_size = int(self.meta["vocab_size"])

    def __len__(self) -> int:
        return int(self.meta["num_tokens"])


def encode_documents(tokenizer, docs: Iterable[str], *, batch_docs: int = 64, chunk_chars: int = 1 << 18,
                     total_chars: int | None = None, progress: bool = True, desc: str = "tokenizing") -> np.ndarray:
    """Token ids of all documents, each followed by the end-of-text id, with progress in characters (a bar
    on a terminal, a line every 5% - or every 16M characters when the total is unknown - in a log).

    Long documents are cut into ~256 KB pieces at line breaks so the batch encoder stays parallel; a batch
    goes to the encoder once it has a piece for every core (at least 1 MB), so progress moves every second
    or so even on a text of three long documents.
    """
    dtype = dtype_for_vocab(tokenizer.vocab_size)
    eot = np.asarray([tokenizer.eot_id], dtype=dtype)
    parts: list[np.ndarray] = []
    batch: list[tuple[str, bool]] = []  # (text, ends a document)
    every = max(1, total_chars // 20) if total_chars else 1 << 24
    bar = progress_bar(total_chars, 0, desc, every, unit="chars") if progress else None
    flush_chars = max(1 << 20, (os.cpu_count() or 1) * chunk_chars)

    def flush():
        for (_text, ends_doc), ids in zip(batch, tokenizer.encode_batch([t for t, _ in batch])):
            parts.append(np.asarray(ids, dtype=dtype))
            if ends_doc:
                parts.append(eot)
        if bar is not None:
            bar.update(sum(len(t) for t, _ in batch))
        batch.clear()

    for doc in docs:
        pieces = list(_pieces(doc, chunk_chars)) or [""]
        for k, piece in enumerate(pieces):
            batch.append((piece, k == len(pieces) - 1))
            # flush by count (many short documents) or by size (a few long ones): the bar keeps moving
            if len(batch) >= batch_docs or sum(len(t) for t, _ in batch) >= flush_chars:
                flush()
    if batch:
        flush()
    if bar is not None:
        bar.close()
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _pieces(doc: str, size: int):
    start = 0
    while start < len(doc):
        end = min(len(doc), start + size)
        if end < len(doc):
            cut = doc.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        yield doc[start:end]
        start = end


def split_train_val(tokens: np.ndarray, val_fraction: float, seed: int = 0,
                    block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split: blocks of `block` tokens go to validation with probability val_fraction.

    Blocks (rather than a tail) spread the validation set over every source of the corpus; at least
    one block is held out whenever val_fraction > 0.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    n_blocks = max(1, -(-tokens.size // block))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A17]))
    is_val = rng.random(n_blocks) < val_fraction
    if val_fraction > 0 and not is_val.any():
        is_val[rng.integers(n_blocks)] = True
    if is_val.all() and n_blocks > 1:
        is_val[0] = False
    block_ids = np.arange(tokens.size) // block
    mask = is_val[block_ids]
    return tokens[~mask], tokens[mask]
