"""averis._shared_record: the lookups of ../shared name the running test (CI runs those again without it)."""

from __future__ import annotations

import lzma
import os
import subprocess
import sys

import pytest

from averis import _shared_record
from averis.data.sources import CorpusNotFound, corpus_dir
from averis.eval.harness import data_folder


def test_default_lookups_record_the_test_and_explicit_places_do_not(tmp_path, monkeypatch, request):
    record = tmp_path / "record.txt"
    monkeypatch.setenv(_shared_record.ENV, str(record))
    monkeypatch.delenv("AVERIS_CORPUS", raising=False)
    monkeypatch.delenv("AVERIS_EVAL_DATA", raising=False)
    with pytest.raises(FileNotFoundError):
        data_folder(tmp_path / "none")  # an explicit folder (--data): no line
    assert not record.exists()
    try:
        data_folder()  # the default place (../shared/data/eval), there or not
    except FileNotFoundError:
        pass
    try:
        corpus_dir()  # the default places (../shared/data/corpus), there or not
    except CorpusNotFound:
        pass
    assert record.read_text().splitlines() == [request.node.nodeid] * 2

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with lzma.open(corpus / "a.txt.xz", "wt") as f:
        f.write("text")
    monkeypatch.setenv("AVERIS_CORPUS", str(corpus))
    monkeypatch.setenv("AVERIS_EVAL_DATA", str(tmp_path / "eval"))
    assert corpus_dir() == corpus
    with pytest.raises(FileNotFoundError):
        data_folder()
    monkeypatch.setenv("AVERIS_CORPUS", "none")
    with pytest.raises(CorpusNotFound):
        corpus_dir()
    assert record.read_text().splitlines() == [request.node.nodeid] * 2  # none of these is ../shared

    monkeypatch.delenv("AVERIS_CORPUS")
    code = ("from averis.data.sources import CorpusNotFound, corpus_dir\n"
            "try:\n    corpus_dir()\nexcept CorpusNotFound:\n    pass\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy(), timeout=120)
    assert record.read_text().splitlines() == [request.node.nodeid] * 3  # a process the test starts


def test_fixtures_record_their_file_and_lookups_outside_tests_are_marked(tmp_path, monkeypatch):
    record = tmp_path / "record.txt"
    monkeypatch.setenv(_shared_record.ENV, str(record))
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_x.py::test_y[a (b)] (setup)")
    _shared_record.note("corpus")
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_x.py::test_y[a (b)] (call)")
    _shared_record.note("corpus")
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    _shared_record.note("corpus")
    lines = record.read_text().splitlines()
    assert lines[:2] == ["tests/test_x.py", "tests/test_x.py::test_y[a (b)]"]
    assert lines[2].startswith("!corpus looked up outside a test")
    monkeypatch.delenv(_shared_record.ENV)
    _shared_record.note("corpus")  # off: nothing written anywhere
    assert len(record.read_text().splitlines()) == 3
