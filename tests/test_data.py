"""Data: token files, the train/validation split, random-window batching, tokenizers, sources, caching."""

from __future__ import annotations

import json
import lzma
import os

import numpy as np
import pytest

from averis.data import (
    ByteTokenizer,
    TokenFile,
    WindowSampler,
    bundled_files,
    documents,
    encode_documents,
    eval_starts,
    prepare,
    split_train_val,
    train_bpe,
    write_tokens,
)
from averis.data.sources import corpus_dir, expand_paths
from averis.train.config import DataConfig


def test_token_file_roundtrip_uint16(tmp_path):
    tokens = np.arange(1000, dtype=np.int64) % 300
    path = write_tokens(tmp_path / "t.bin", tokens, {"vocab_size": 300, "eot_id": 299})
    tf = TokenFile(path)
    assert tf.tokens.dtype == np.dtype("<u2") and len(tf) == 1000
    assert np.array_equal(np.asarray(tf.tokens), tokens)
    assert json.loads((tmp_path / "t.json").read_text())["num_tokens"] == 1000


def test_token_file_uses_uint32_for_large_vocabularies(tmp_path):
    tokens = np.array([0, 70_000, 151_935])
    tf = TokenFile(write_tokens(tmp_path / "big.bin", tokens, {"vocab_size": 151_936, "eot_id": 0}))
    assert tf.tokens.dtype == np.dtype("<u4") and list(tf.tokens) == [0, 70_000, 151_935]


def test_truncated_token_file_is_a_clear_error(tmp_path):
    path = write_tokens(tmp_path / "t.bin", np.arange(100), {"vocab_size": 256, "eot_id": 0})
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated"):
        TokenFile(path)
    with pytest.raises(FileNotFoundError):
        TokenFile(tmp_path / "missing.bin")


def test_token_ids_beyond_the_vocabulary_are_refused(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        write_tokens(tmp_path / "t.bin", np.array([5, 300]), {"vocab_size": 300, "eot_id": 0})


def test_split_is_deterministic_disjoint_and_complete():
    tokens = np.arange(100_000)
    train, val = split_train_val(tokens, 0.1, seed=3, block=1000)
    train2, val2 = split_train_val(tokens, 0.1, seed=3, block=1000)
    assert np.array_equal(train, train2) and np.array_equal(val, val2)
    assert len(train) + len(val) == len(tokens) and not set(train.tolist()) & set(val.tolist())
    assert 0 < len(val) < 30_000  # ~10% of the 100 blocks
    _, other = split_train_val(tokens, 0.1, seed=4, block=1000)
    assert not np.array_equal(val, other)


def test_windows_are_a_function_of_seed_step_and_index():
    tokens = np.arange(10_000, dtype=np.uint16)
    s = WindowSampler(tokens, seq_len=16, seed=1)
    x, y = s.batch(step=5, index=0, batch_size=4)
    x2, _ = WindowSampler(tokens, 16, seed=1).batch(5, 0, 4)
    assert x.shape == (4, 16) and torch_equal(x, x2)
    assert torch_equal(y[:, :-1], x[:, 1:])  # targets are the next tokens
    assert not torch_equal(x, s.batch(6, 0, 4)[0]) and not torch_equal(x, s.batch(5, 1, 4)[0])


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_too_little_data_for_one_window_is_a_clear_error():
    with pytest.raises(ValueError, match="seq_len"):
        WindowSampler(np.arange(10), seq_len=16, seed=0)


def test_eval_windows_are_fixed_and_in_range():
    starts = eval_starts(1000, 64, 8)
    assert len(starts) == 8 and starts[0] == 0 and starts[-1] == 1000 - 65
    assert np.array_equal(starts, eval_starts(1000, 64, 8))


def test_byte_tokenizer_roundtrip_and_end_of_text():
    tok = ByteTokenizer()
    ids = encode_documents(tok, ["héllo", "wörld"], progress=False)
    assert list(ids).count(tok.eot_id) == 2
    assert tok.decode(ids) == "héllowörld"


def test_bpe_trains_and_roundtrips():
    text = lzma.open(bundled_files()[0], "rt").read(200_000)
    tok = train_bpe([text], vocab_size=600, show_progress=False)
    assert tok.vocab_size == 600
    ids = tok.encode_batch(["Emma Woodhouse, handsome, clever"])[0]
    assert tok.decode(ids) == "Emma Woodhouse, handsome, clever"
    assert len(ids) < len("Emma Woodhouse, handsome, clever")  # it learned merges


def test_long_documents_are_cut_without_losing_text():
    tok = ByteTokenizer()
    doc = "line\n" * 5000
    ids = encode_documents(tok, [doc], chunk_chars=1000, progress=False)
    assert tok.decode(ids) == doc and int((ids == tok.eot_id).sum()) == 1


def test_bundled_text_is_small_and_readable():
    files = bundled_files()
    assert sum(f.stat().st_size for f in files) <= 3 * 2**20
    first = next(documents("bundled", max_chars=100))
    assert first.startswith("EMMA") and len(first) == 100


def test_files_and_folders(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub").mkdir()
    with lzma.open(tmp_path / "sub" / "b.txt.xz", "wt") as f:
        f.write("beta")
    (tmp_path / "ignored.bin").write_bytes(b"\0")
    assert list(documents("files", paths=[str(tmp_path)])) == ["alpha", "beta"]
    with pytest.raises(FileNotFoundError, match="no such file"):
        expand_paths([str(tmp_path / "nope.txt")])
    with pytest.raises(ValueError, match="data.paths"):
        list(documents("files"))
    with pytest.raises(ValueError, match="unknown data.source"):
        list(documents("web"))


def test_corpus_is_found_through_the_environment(tmp_path, monkeypatch):
    with lzma.open(tmp_path / "mini.txt.xz", "wt") as f:
        f.write("corpus text")
    monkeypatch.setenv("AVERIS_CORPUS", str(tmp_path))
    assert corpus_dir() == tmp_path
    assert list(documents("corpus", names=["mini"])) == ["corpus text"]
    with pytest.raises(FileNotFoundError, match="has: mini"):
        list(documents("corpus", names=["austen"]))
    monkeypatch.setenv("AVERIS_CORPUS", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="AVERIS_CORPUS"):
        corpus_dir()


def test_without_the_corpus_defaults_fall_back_to_the_bundled_text(tmp_path, monkeypatch, capsys):
    """A fresh clone has no ../shared: AVERIS_CORPUS=none stands for it. What only defaults to the corpus reads
    the bundled text (saying so, on one line); what names the corpus fails with a clear error."""
    from averis.cli import main
    from averis.data.sources import CorpusNotFound, corpus_or_bundled

    monkeypatch.setenv("AVERIS_CORPUS", "none")
    with pytest.raises(CorpusNotFound, match="AVERIS_CORPUS=none"):
        corpus_dir()
    path, label = corpus_or_bundled("moby_dick")
    assert path.name == "moby_dick.txt.xz" and label == "bundled moby_dick"
    assert corpus_or_bundled("kjv")[1] == "bundled austen"  # not bundled: the first bundled text
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "reading the bundled moby_dick text instead" in err
    out = tmp_path / "tok"
    assert main(["data", "tokenize", "--out", str(out), "--tokenizer", "byte", "--max-chars", "5000",
                 "--no-progress"]) == 0
    assert "tokenizing the bundled text instead" in capsys.readouterr().err
    assert json.loads((out / "train.json").read_text())["source"] == "bundled"
    assert main(["data", "tokenize", "--out", str(tmp_path / "t2"), "--names", "kjv", "--no-progress"]) == 2
    assert "AVERIS_CORPUS=none" in capsys.readouterr().err


def test_hf_source_without_datasets_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "datasets" else real(n, *a))
    with pytest.raises(ImportError, match="pip install datasets"):
        list(documents("hf:wikitext"))


def test_prepare_builds_once_then_reuses_the_cache(tmp_path):
    (tmp_path / "t.txt").write_text("some text to tokenize. " * 2000)
    cfg = DataConfig(source="files", paths=[str(tmp_path / "t.txt")], tokenizer="byte", val_fraction=0.2)
    data = prepare(cfg, tmp_path / "cache", progress=False)
    assert data.vocab_size == 257 and data.val is not None
    assert len(data.train) + len(data.val) == 2000 * 23 + 1
    stamp = os.stat(data.train.path).st_mtime_ns
    again = prepare(cfg, tmp_path / "cache", progress=False)
    assert again.train.path == data.train.path and os.stat(again.train.path).st_mtime_ns == stamp
    assert data.tokenizer().decode(np.asarray(data.train.tokens[:9])) == "some text"


def test_tokenizing_into_a_log_says_what_it_does_without_blank_lines(tmp_path, capfd):
    """Not a terminal: a line before the BPE is trained, progress lines, a summary; the BPE trainer's own
    progress bars (written by Rust straight to the file descriptor) left blank lines in a log."""
    cfg = DataConfig(source="bundled", max_chars=30_000, vocab_size=300)
    prepare(cfg, tmp_path / "cache", progress=True)
    captured = capfd.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert lines[0] == "data: training a 300-token byte-level BPE on the bundled text (austen, moby_dick, " \
                       "shakespeare), first 30,000 characters"
    assert lines[1].startswith("tokenizing: chars 30,000/30,000 (100%)")
    assert lines[-1].startswith("data: ") and "validation tokens in" in lines[-1]
    assert "" not in [ln.strip() for ln in lines] and "\r" not in captured.out + captured.err


def test_hf_dataset_rows_are_read_from_the_text_field(monkeypatch):
    import importlib.machinery
    import sys
    import types

    class FakeDataset(list):
        column_names = ["text", "id"]

    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
    calls = []
    fake.load_dataset = lambda name, config, split, data_files: calls.append((name, split, data_files)) or \
        FakeDataset([{"text": "first", "id": 1}, {"text": "second", "id": 2}])
    monkeypatch.setitem(sys.modules, "datasets", fake)
    assert list(documents("hf:json", paths=["a.jsonl"], hf_split="validation")) == ["first", "second"]
    assert calls == [("json", "validation", ["a.jsonl"])]
    with pytest.raises(ValueError, match="no column 'body'"):
        list(documents("hf:json", hf_text_field="body"))


def test_the_token_cache_key_follows_the_corpus_folder_and_its_files(monkeypatch, tmp_path):
    """Two corpora (AVERIS_CORPUS elsewhere) or a corpus file rewritten must not share a token cache."""
    import importlib

    prep = importlib.import_module("averis.data.prepare")
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        with lzma.open(tmp_path / name / "austen.txt.xz", "wt") as f:
            f.write(f"the {name} corpus\n")
    cfg = DataConfig(source="corpus", names=["austen"])
    monkeypatch.setenv("AVERIS_CORPUS", str(tmp_path / "one"))
    key = prep.data_key(cfg)
    assert prep.data_key(cfg) == key
    monkeypatch.setenv("AVERIS_CORPUS", str(tmp_path / "two"))
    assert prep.data_key(cfg) != key
    monkeypatch.setenv("AVERIS_CORPUS", str(tmp_path / "one"))
    path = tmp_path / "one" / "austen.txt.xz"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten in place (same size)
    assert prep.data_key(cfg) != key


def test_the_token_cache_key_changes_with_the_tokens_version_and_the_bundled_text(monkeypatch, tmp_path):
    """A cache folder written by code that tokenized differently must not be reused (a stale folder once gave
    the README's quickstart different losses at the same commit)."""
    import importlib

    prep = importlib.import_module("averis.data.prepare")  # the module: averis.data.prepare is also a function

    cfg = DataConfig(source="bundled")
    key = prep.data_key(cfg)
    monkeypatch.setattr(prep, "TOKENS_VERSION", prep.TOKENS_VERSION + 1)
    assert prep.data_key(cfg) != key
    monkeypatch.setattr(prep, "TOKENS_VERSION", prep.TOKENS_VERSION - 1)
    assert prep.data_key(cfg) == key
    other = tmp_path / "austen.txt.xz"
    other.write_bytes(b"not the bundled text")
    monkeypatch.setattr(prep.sources, "bundled_files", lambda: [other])
    assert prep.data_key(cfg) != key
