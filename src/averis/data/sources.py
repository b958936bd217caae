"""Where training text comes from: the bundled sample, the offline corpus, files and folders, HF datasets.

Every source yields documents (strings); the tokenizer joins them with an end-of-text token.
"""

from __future__ import annotations

import importlib.util
import lzma
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from .._shared_record import note

BUNDLED_DIR = Path(__file__).resolve().parent
BUNDLED_NAMES = ("austen", "moby_dick", "shakespeare")
TEXT_SUFFIXES = (".txt", ".txt.xz", ".md", ".rst", ".text")


def bundled_files() -> list[Path]:
    """The public-domain sample shipped in the package (about 4.4 MB of text, 1.4 MB compressed)."""
    return [BUNDLED_DIR / f"{name}.txt.xz" for name in BUNDLED_NAMES]


class CorpusNotFound(FileNotFoundError):
    """The offline corpus is not on this machine (or AVERIS_CORPUS=none hides it): commands that only default
    to it fall back to the bundled text."""


def corpus_dir() -> Path:
    """The offline corpus: $AVERIS_CORPUS, else shared/data/corpus beside the repo or the cwd (or a parent).

    AVERIS_CORPUS=none hides it, as on a fresh clone without ../shared (CI runs the tests that look it up so
    once more: averis._shared_record).
    """
    env = os.environ.get("AVERIS_CORPUS")
    if env == "none":
        raise CorpusNotFound("the offline corpus is switched off (AVERIS_CORPUS=none)")
    if env:
        if not Path(env).is_dir() or not any(Path(env).glob("*.txt.xz")):
            raise FileNotFoundError(f"AVERIS_CORPUS={env} is not a folder of *.txt.xz files")
        return Path(env)
    note("corpus")  # the default places: beside the repository (../shared) or the cwd
    here = Path(__file__).resolve()
    cwd = Path.cwd().resolve()
    for base in (*here.parents, cwd, *cwd.parents):
        for candidate in (base / "shared" / "data" / "corpus", base / "data" / "corpus"):
            if candidate.is_dir() and any(candidate.glob("*.txt.xz")):
                return candidate
    raise CorpusNotFound("the offline corpus was not found: set AVERIS_CORPUS to a folder of *.txt.xz "
                            "files, or rebuild it with `averis data build-corpus --out DIR`")


def corpus_files(names: list[str] | None = None) -> list[Path]:
    """Corpus files, all of them (sorted) or the named ones (e.g. ["austen", "kjv"])."""
    folder = corpus_dir()
    if not names:
        return sorted(folder.glob("*.txt.xz"))
    files = [folder / f"{n}.txt.xz" for n in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        have = ", ".join(p.name.removesuffix(".txt.xz") for p in sorted(folder.glob("*.txt.xz")))
        raise FileNotFoundError(f"corpus files {missing} are not in {folder} (it has: {have})")
    return files


def corpus_text(name: str = "austen", max_chars: int | None = 200_000) -> str:
    """Text of one corpus file (e.g. "austen", "moby_dick", "linux_doc"), cut to max_chars."""
    (path,) = corpus_files([name])  # a clear error names the files there are
    with lzma.open(path, "rt", encoding="utf-8") as f:
        return f.read(max_chars) if max_chars else f.read()


def corpus_or_bundled(name: str) -> tuple[Path, str]:
    """The corpus file `name` and a label ("corpus austen"); where the corpus is absent, the bundled file of
    that name (else the first bundled one) and one line on stderr saying so: a default must work on a fresh clone."""
    try:
        (path,) = corpus_files([name])
        return path, f"corpus {name}"
    except CorpusNotFound as err:
        path = BUNDLED_DIR / f"{name}.txt.xz"
        path = path if path.is_file() else bundled_files()[0]
        label = f"bundled {path.name.removesuffix('.txt.xz')}"
        print(f"averis: {err}; reading the {label} text instead", file=sys.stderr)
        return path, label


def read_text(path: Path) -> str:
    """A text file, plain or xz-compressed, as UTF-8 (undecodable bytes replaced, never an error)."""
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()


def expand_paths(paths: list[str]) -> list[Path]:
    """Files named directly, plus every text file under the named folders (sorted, so runs are reproducible)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(TEXT_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"no text files ({', '.join(TEXT_SUFFIXES)}) under {p}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return files


def hf_documents(name: str, split: str = "train", text_field: str = "text", config: str | None = None,
                 data_files: list[str] | None = None) -> Iterator[str]:
    """Documents of a Hugging Face dataset: a hub id, a local folder, or a builder ("json", "text") + files."""
    if importlib.util.find_spec("datasets") is None:
        raise ImportError("data.source 'hf:...' needs the `datasets` package: pip install datasets")
    import datasets

    ds = datasets.load_dataset(name, config, split=split, data_files=data_files or None)
    if text_field not in ds.column_names:
        raise ValueError(f"dataset {name} has no column {text_field!r} (columns: {ds.column_names}); "
                         f"set data.hf_text_field")
    for row in ds:
        yield row[text_field]


def documents(source: str, *, paths: list[str] | None = None, names: list[str] | None = None,
              hf_split: str = "train", hf_text_field: str = "text", hf_config: str | None = None,
              max_chars: int = 0) -> Iterator[str]:
    """Documents of a source: "bundled", "corpus" (optionally `names`), "files" (`paths`), "hf:<dataset>".

    max_chars > 0 stops after that many characters (cutting the last document), for quick runs.
    """
    if source == "bundled":
        stream = (read_text(f) for f in bundled_files())
    elif source == "corpus":
        stream = (read_text(f) for f in corpus_files(names))
    elif source == "files":
        if not paths:
            raise ValueError("data.source 'files' needs data.paths (text files or folders)")
        stream = (read_text(f) for f in expand_paths(paths))
    elif source.startswith("hf:"):
        stream = hf_documents(source[3:], hf_split, hf_text_field, hf_config, paths)
    else:
        raise ValueError(f"unknown data.source {source!r}: use bundled, corpus, files, hf:<dataset> "
                         f"(or data.train_tokens for token files)")
    yield from _cut(stream, max_chars)


def _cut(stream: Iterator[str], max_chars: int) -> Iterator[str]:
    left = max_chars
    for doc in stream:
        if max_chars and left <= 0:
            return
        yield doc[:left] if max_chars else doc
        left -= len(doc)
