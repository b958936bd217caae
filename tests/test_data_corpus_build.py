"""The offline-corpus rebuild: text extraction rules (no network here), and clear failure reports."""

from __future__ import annotations

import pytest

from averis.data import build_corpus as bc


def test_brown_tags_are_stripped():
    tagged = "\tThe/at Fulton/np-tl County/nn-tl said/vbd ./.\n\n\tIt/pps was/bedz ./.\n"
    assert bc.strip_brown_tags(tagged) == "The Fulton County said .\nIt was ."


def test_bible_verse_labels_are_stripped():
    assert bc.strip_verse_labels("Gen1:1 In the beginning God\nRev22:21 The grace") == "In the beginning God\nThe grace"


def test_a_failing_source_is_reported_and_the_rest_go_on(tmp_path, monkeypatch):
    def fail(tmp):
        raise RuntimeError("`npm` is not installed")

    sources = [bc.Source("one", "npm x", fail), bc.Source("two", "npm y", lambda tmp: "text " * 500)]
    monkeypatch.setattr(bc, "SOURCES", sources)
    results = bc.build_corpus(tmp_path, log=lambda *a: None)
    assert results["one"] == "FAILED: `npm` is not installed" and results["two"].startswith("ok")
    assert (tmp_path / "two.txt.xz").is_file() and "two.txt.xz" in (tmp_path / "SHA256SUMS").read_text()
    with pytest.raises(ValueError, match="unknown corpus source"):
        bc.build_corpus(tmp_path, ["three"])
