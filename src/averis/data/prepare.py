"""From a data config to memory-mapped train/validation token files, cached by content of the config.

The first run tokenizes (with a progress bar) into ``<cache>/tokens-<hash>/``; every later run,
recipe or seed with the same data settings reuses those files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import sources
from .tokenizer import load_tokenizer, tokenizer_from_name, train_bpe
from .tokens import TokenFile, encode_documents, split_train_val, write_tokens


@dataclass
class PreparedData:
    train: TokenFile
    val: TokenFile | None
    vocab_size: int
    eot_id: int
    folder: Path | None  # where the tokenizer and token files live (None for given token files)

    def tokenizer(self):
        spec = self.train.meta.get("tokenizer")
        return load_tokenizer(spec, self.folder or self.train.path.parent) if spec else None


def default_cache_root() -> Path:
    return Path(os.environ.get("AVERIS_CACHE", Path.home() / ".cache" / "averis")) / "tokens"


# Bump when the code changes the tokens it makes from the same text and settings: a cache folder is keyed
# by it, so an upgraded averis never reads tokens an older one wrote (the bundled text's tokenizing changed
# in this session and a cached folder kept giving the old tokens).
TOKENS_VERSION = 2


def data_key(cfg) -> str:
    """Hash of everything that changes the tokens (file sizes and mtimes stand in for file contents, for given files
    and the offline corpus; the bundled text's sizes, since an install sets its mtimes)."""
    fields = {k: getattr(cfg, k) for k in ("source", "paths", "names", "tokenizer", "vocab_size", "max_chars",
                                           "val_fraction", "split_seed", "hf_split", "hf_text_field", "hf_config")}
    fields["tokens_version"] = TOKENS_VERSION
    if cfg.source == "files":
        fields["files"] = _stamps(sources.expand_paths(cfg.paths))
    if cfg.source == "bundled":
        fields["bundled"] = [(p.name, p.stat().st_size) for p in sources.bundled_files()]
    if cfg.source == "corpus":  # where $AVERIS_CORPUS or ../shared points, and what is there now
        fields["corpus"] = _stamps(sources.corpus_files(cfg.names))
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stamps(paths) -> list[tuple[str, int, int]]:
    """(resolved path, size, mtime) of each file: what stands in for its contents in the cache key."""
    return [(str(p.resolve()), st.st_size, st.st_mtime_ns) for p in paths for st in (p.stat(),)]


def prepare(cfg, cache_root: str | Path | None = None, progress: bool = True) -> PreparedData:
    """Token files for a DataConfig: the given ones (cfg.train_tokens), or cached / built from text."""
    if cfg.train_tokens:
        return _given(cfg)
    root = Path(cache_root) if cache_root else default_cache_root()
    folder = root / f"{_slug(cfg.source)}-{data_key(cfg)}"
    if not (folder / "done").is_file():
        start = time.time()
        build(cfg, folder, progress)
        if progress:
            counts = json.loads((folder / "done").read_text())
            print(f"data: {counts['train_tokens']:,} training and {counts['val_tokens']:,} validation tokens in "
                  f"{folder} ({time.time() - start:.0f} s; later runs reuse them)", flush=True)
    return _load(folder)


def _given(cfg) -> PreparedData:
    train = TokenFile(cfg.train_tokens)
    val = TokenFile(cfg.val_tokens) if cfg.val_tokens else None
    if val is not None and val.vocab_size != train.vocab_size:
        raise ValueError(f"data.val_tokens has vocab_size {val.vocab_size} but data.train_tokens has "
                         f"{train.vocab_size}: they come from different tokenizers")
    return PreparedData(train, val, train.vocab_size, int(train.meta.get("eot_id", 0)), None)


def _load(folder: Path) -> PreparedData:
    train = TokenFile(folder / "train.bin")
    val = TokenFile(folder / "val.bin") if (folder / "val.bin").is_file() else None
    return PreparedData(train, val, train.vocab_size, int(train.meta["eot_id"]), folder)


def _slug(source: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in source)[:40]


def build(cfg, folder: Path, progress: bool = True) -> None:
    """Tokenize the source into folder/{train,val}.bin (+ tokenizer files); atomic via a tmp folder."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer = make_tokenizer(cfg, progress)
    spec = tokenizer.save(tmp)
    tokens = encode_documents(tokenizer, _docs(cfg), total_chars=_total_chars(cfg), progress=progress)
    train, val = split_train_val(tokens, cfg.val_fraction, cfg.split_seed)
    meta = {"vocab_size": tokenizer.vocab_size, "eot_id": tokenizer.eot_id, "tokenizer": spec,
            "source": cfg.source, "key": folder.name}
    write_tokens(tmp / "train.bin", train, {**meta, "split": "train"})
    if val.size:
        write_tokens(tmp / "val.bin", val, {**meta, "split": "val"})
    (tmp / "done").write_text(json.dumps({"train_tokens": int(train.size), "val_tokens": int(val.size)}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def make_tokenizer(cfg, progress: bool = True):
    if cfg.tokenizer == "bpe":
        if progress:
            print(f"data: training a {cfg.vocab_size:,}-token byte-level BPE on the {_describe(cfg)}", flush=True)
        # the trainer's own bars only on a terminal: in a log file they leave blank lines
        return train_bpe(_docs(cfg), cfg.vocab_size, show_progress=progress and sys.stderr.isatty())
    return tokenizer_from_name(cfg.tokenizer)


def _describe(cfg) -> str:
    what = {"bundled": "bundled text (" + ", ".join(sources.BUNDLED_NAMES) + ")",
            "corpus": "offline corpus" + (f" ({', '.join(cfg.names)})" if cfg.names else ""),
            "files": "given files"}.get(cfg.source, cfg.source)
    return what + (f", first {cfg.max_chars:,} characters" if cfg.max_chars else "")


def _docs(cfg):
    return sources.documents(cfg.source, paths=cfg.paths, names=cfg.names, hf_split=cfg.hf_split,
                             hf_text_field=cfg.hf_text_field, hf_config=cfg.hf_config, max_chars=cfg.max_chars)


def _total_chars(cfg) -> int | None:
    """Only for the progress bar's total: uncompressed sizes are unknown for .xz, so None there (the bundled
    text is small enough to count)."""
    if cfg.max_chars:
        return cfg.max_chars
    if cfg.source == "bundled":
        return sum(len(doc) for doc in _docs(cfg))
    return None
