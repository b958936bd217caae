"""averis eval: lm-evaluation-harness on our task configs, checked against an independent PyTorch scorer; the
run loader (latest checkpoint, trained recipe); one-line errors; offline.

The end-to-end tests write small JSONL files in the data's schema (shared/data/eval/README.md), so they run
on a fresh clone; only the test of the real files needs ../shared.  Tests that run lm-eval skip without it.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import random
import socket
from pathlib import Path

import pytest
import torch

from averis.cli import main
from averis.eval.harness import TASKS, data_folder

transformers = pytest.importorskip("transformers")
WORDS = ("the cat dog sun moon river stone bread water fire tree house road light night green small big old new "
         "runs eats sees takes makes cold warm fast slow over under into with from").split()


def needs_lm_eval():
    pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (pip install \"averis[eval]\")")


def tiny_tokenizer(texts: list[str]):
    """A byte-level BPE (vocabulary 320) trained on the test's own text: any string encodes, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def tiny_model(vocab: int, seed: int = 0):
    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_data(folder: Path, n: int = 12) -> dict[str, list[dict]]:
    """piqa, winogrande and lambada_openai files in the real files' schema, with random words."""
    rng = random.Random(0)
    docs = {
        "piqa": [{"id": i, "context": f"Question: {sentence(rng, 6)}?\nAnswer:",
                  "choices": [sentence(rng, rng.randint(1, 6)) for _ in range(2)], "label": rng.randint(0, 1)}
                 for i in range(n)],
        "lambada_openai": [{"id": i, "text": sentence(rng, 12)} for i in range(n)],
        "winogrande": [],
    }
    for i in range(n):
        before, after, options = sentence(rng, 5), sentence(rng, 4) + ".", [rng.choice(WORDS), rng.choice(WORDS)]
        docs["winogrande"].append({"id": i, "context": f"{before} _ {after}", "choices": options,
                                   "label": rng.randint(0, 1), "contexts": [f"{before} {o}" for o in options],
                                   "continuation": after})
    folder.mkdir(parents=True, exist_ok=True)
    for task, rows in docs.items():
        path = folder / TASKS[task]  # lambada_openai.jsonl.xz: xz-compressed, as the real file
        with (lzma.open if path.suffix == ".xz" else open)(path, "wt", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
    return docs


def all_text(docs: dict) -> list[str]:
    texts = []
    for rows in docs.values():
        for r in rows:
            texts += [r.get("context", ""), r.get("text", ""), r.get("continuation", ""), *r.get("choices", [])]
    return texts


# ----------------------------------------------------------------------------- the independent reference
def logprob(model, tok, context: str, continuation: str) -> tuple[float, bool]:
    """Sum of log P(continuation tokens | context) and whether each is the greedy choice: the context tokenized on
    its own, the continuation's tokens appended (the data README's rule), one unbatched forward."""
    ctx = tok(context, add_special_tokens=False).input_ids
    cont = tok(continuation, add_special_tokens=False).input_ids
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    rows = logp[len(ctx) - 1:len(ctx) + len(cont) - 1]
    target = torch.tensor(cont)
    return float(rows.gather(1, target[:, None]).sum()), bool((rows.argmax(-1) == target).all())


def reference(model, tok, docs: dict, per_doc: dict | None = None) -> dict:
    """acc (and acc_norm: divided by the choice's length in characters) as the README defines them; per_doc (a
    dict) gets each task's headline metric document by document as a string of 0s and 1s."""
    scores = {}
    hits = [[], []]
    for r in docs["piqa"]:
        lls = [logprob(model, tok, r["context"], " " + c)[0] for c in r["choices"]]
        norm = [ll / len(c) for ll, c in zip(lls, r["choices"])]
        hits[0].append(max(range(len(lls)), key=lls.__getitem__) == r["label"])
        hits[1].append(max(range(len(norm)), key=norm.__getitem__) == r["label"])
    scores["piqa"] = {"acc": sum(hits[0]) / len(hits[0]), "acc_norm": sum(hits[1]) / len(hits[1])}
    wino = []
    for r in docs["winogrande"]:
        lls = [logprob(model, tok, c, " " + r["continuation"])[0] for c in r["contexts"]]
        wino.append(max(range(2), key=lls.__getitem__) == r["label"])
    scores["winogrande"] = {"acc": sum(wino) / len(wino)}
    greedy = []
    for r in docs["lambada_openai"]:
        words = r["text"].split(" ")
        greedy.append(logprob(model, tok, " ".join(words[:-1]), " " + words[-1])[1])
    scores["lambada_openai"] = {"acc": sum(greedy) / len(greedy)}
    if per_doc is not None:
        for task, hit in (("piqa", hits[0]), ("winogrande", wino), ("lambada_openai", greedy)):
            per_doc[task] = "".join("1" if h else "0" for h in hit)
    return scores


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: the evaluation must be offline."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"averis eval tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_lm_eval_accuracy_equals_the_independent_reference(tmp_path, one_thread, no_network, monkeypatch):
    needs_lm_eval()
    from averis.eval import evaluate

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    docs = write_data(tmp_path / "data")
    tok = tiny_tokenizer(all_text(docs))
    # two seeds: accuracies that differ between the models show the comparison is not trivially equal
    got_by_seed = []
    for seed in (0, 1):
        model = tiny_model(len(tok), seed)
        out = evaluate(model, tok, ["piqa", "winogrande", "lambada_openai"], limit=12, batch_size=4,
                       data=tmp_path / "data")
        ref_per_doc = {}
        ref = reference(model, tok, docs, ref_per_doc)
        got = {task: {m: out["results"][task][f"{m},none"] for m in ref[task]} for task in ref}
        assert got == ref, (seed, got, ref)
        assert out["per_doc"] == ref_per_doc and "samples" not in out
        assert all(out["n-samples"][t]["effective"] == 12 for t in ref)
        got_by_seed.append(got)
    assert got_by_seed[0] != got_by_seed[1]


def save_tiny(tmp_path: Path, docs: dict, seed: int = 0) -> Path:
    tok = tiny_tokenizer(all_text(docs))
    folder = tmp_path / "tiny"
    tiny_model(len(tok), seed).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_cli_end_to_end_writes_eval_json_and_table(tmp_path, one_thread, no_network, monkeypatch, capsys):
    needs_lm_eval()
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    docs = write_data(tmp_path / "data")
    model = save_tiny(tmp_path, docs)
    out = tmp_path / "out"
    rc = main(["eval", str(model), "--tasks", "piqa,winogrande", "--limit", "4", "--batch-size", "2",
               "--data", str(tmp_path / "data"), "--out", str(out), "--device", "cpu"])
    assert rc == 0
    result = json.loads((out / "eval.json").read_text())
    assert set(result["tasks"]) == {"piqa", "winogrande"}
    piqa = result["tasks"]["piqa"]
    assert piqa["n"] == 4 and {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"} <= set(piqa)
    assert result["average"] == pytest.approx((piqa["acc"] + result["tasks"]["winogrande"]["acc"]) / 2)
    assert result["limit"] == 4 and result["recipe"] == "bf16" and result["command"].startswith("averis eval ")
    table = (out / "eval.md").read_text()
    assert "| PIQA (acc) | WinoGrande (acc) | Avg |" in table
    assert "PIQA (acc)" in capsys.readouterr().out

    # the same files again, compared in one table
    rc = main(["eval", "--compare", str(out / "eval.json"), str(out), "--out", str(tmp_path / "cmp.md")])
    assert rc == 0
    assert (tmp_path / "cmp.md").read_text().count("| tiny |") == 2
    # --out an existing folder: the table goes in as downstream.md (it used to fail writing to the folder)
    rc = main(["eval", "--compare", str(out / "eval.json"), "--out", str(out)])
    assert rc == 0 and (out / "downstream.md").read_text().count("| tiny |") == 1

    # another model on the same documents, paired against the first: per document, tasks and average
    assert result["per_doc"].keys() == {"piqa", "winogrande"} and len(result["per_doc"]["piqa"]) == 4
    other = save_tiny(tmp_path / "other", docs, seed=1)
    rc = main(["eval", str(other), "--tasks", "piqa,winogrande", "--limit", "4", "--batch-size", "2",
               "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out2"), "--device", "cpu"])
    assert rc == 0
    capsys.readouterr()
    rc = main(["eval", "--compare", str(out), str(tmp_path / "out2"), "--paired-against", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "**Paired against tiny**" in table and "| model | PIQA | WinoGrande | Avg |" in table
    assert len([line for line in table.splitlines() if line.startswith("| tiny |")]) == 3  # 2 rows + 1 paired


def test_unknown_task_is_a_one_line_error_listing_the_tasks(capsys):
    assert main(["eval", "smollm2-135m", "--tasks", "piqa,hellaswagg"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "unknown task(s) hellaswagg" in err and all(t in err for t in TASKS)


def test_missing_extra_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    import importlib.util

    write_data(tmp_path / "data")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a))
    assert main(["eval", "smollm2-135m", "--tasks", "piqa", "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and 'pip install "averis[eval]"' in err and "lm_eval" in err


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    assert main(["eval", "smollm2-135m", "--tasks", "piqa,race", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "piqa.jsonl, race.jsonl.xz" in err and "AVERIS_EVAL_DATA" in err


def make_run(tmp_path: Path, docs: dict, recipe: str) -> tuple[Path, torch.nn.Module]:
    """A run folder as the trainer writes it (config.yaml, checkpoints/step_N, latest) for the tiny HF model,
    whose checkpoint weights differ from the saved folder's (as after training)."""
    import averis
    from averis.train import checkpoint as ckpt
    from averis.train.config import load_config, save_config

    folder = save_tiny(tmp_path, docs)
    run = tmp_path / "run"
    cfg = load_config(overrides=[f"recipe={recipe}", "model.arch=hf", f"model.name={folder}",
                                 f"data.tokenizer={folder}", f"out={run}", "train.seed=3"])
    run.mkdir()
    save_config(cfg, run / "config.yaml")
    trained = transformers.AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))
    from averis.train.quant import apply_recipe

    trained = apply_recipe(trained, recipe, 3)
    for step in (2, 4):
        tmp = ckpt.tmp_dir(run / "checkpoints", step)
        tmp.mkdir(parents=True)
        ckpt.save_model_file(trained.state_dict(), tmp / ckpt.MODEL_FILE, {"step": step})
        torch.save({"step": step}, tmp / ckpt.TRAINER_FILE)
        ckpt.finalize(run / "checkpoints", step, keep=2)
    assert averis.nn.quantized_layers(trained) or recipe == "bf16"
    return run, trained.eval()


@pytest.mark.parametrize("recipe", ["nvfp4", "averis"])
def test_a_run_loads_its_latest_checkpoint_under_its_recipe(tmp_path, one_thread, recipe):
    from averis.eval import load_target
    from averis.nn import quantization_disabled, quantized_layers

    docs = write_data(tmp_path / "data")
    run, trained = make_run(tmp_path, docs, recipe)
    ids = torch.randint(0, 300, (1, 24), generator=torch.Generator().manual_seed(0))
    model, tok, info = load_target(str(run))
    assert info["step"] == 4 and info["recipe"] == recipe and info["trained_recipe"] == recipe
    assert info["checkpoint"].endswith("step_00000004") and len(tok) == trained.config.vocab_size
    assert sorted(quantized_layers(model)) == sorted(quantized_layers(trained))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, trained(ids).logits)  # the trained FP4 forward, bit for bit
        with quantization_disabled(trained):
            high = trained(ids).logits
        assert not torch.equal(high, model(ids).logits)

    plain, _, info = load_target(str(run), recipe="bf16")  # the same weights in high precision
    assert info["recipe"] == "bf16" and not quantized_layers(plain)
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, high)

    one, _, info = load_target(str(run / "checkpoints" / "step_00000002"))  # one checkpoint by its folder
    assert info["step"] == 2


def test_a_run_without_checkpoints_or_with_its_own_bpe_is_refused(tmp_path):
    from averis.eval import load_target
    from averis.train.config import load_config, save_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_config(load_config(overrides=[f"out={run}"]), run / "config.yaml")
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_target(str(run))
    from averis.train import checkpoint as ckpt

    tmp = ckpt.tmp_dir(run / "checkpoints", 1)
    tmp.mkdir()
    ckpt.save_model_file({"w": torch.zeros(1)}, tmp / ckpt.MODEL_FILE, {})
    torch.save({}, tmp / ckpt.TRAINER_FILE)
    ckpt.finalize(run / "checkpoints", 1, keep=1)
    with pytest.raises(ValueError, match="model.arch=qwen3"):
        load_target(str(run))


def real_data() -> Path:
    """The real evaluation files where `averis eval` looks ($AVERIS_EVAL_DATA, else ../shared: a lookup CI records
    and runs again without it), or a skip on a fresh clone."""
    if os.environ.get("AVERIS_CORPUS") == "none":
        pytest.skip("AVERIS_CORPUS=none: ../shared is hidden, as on a fresh clone")
    try:
        return data_folder()
    except FileNotFoundError as err:
        pytest.skip(f"{err} (a fresh clone without ../shared)")


def test_every_task_config_reads_its_real_file(tmp_path, one_thread, no_network, monkeypatch):
    """All ten configs load the real JSONL (.xz read directly) offline; the documents lm-eval builds are the
    files' first lines, with the prompt, choices and gold exactly as the file holds them."""
    folder = real_data()
    needs_lm_eval()
    from averis.eval.harness import go_offline, render_tasks

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    go_offline()
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(render_tasks(folder, list(TASKS), tmp_path / "tasks")),
                          include_defaults=False)
    tasks = manager.load(list(TASKS))["tasks"]
    assert set(tasks) == set(TASKS)
    for name, task in tasks.items():
        path = folder / TASKS[name]
        with (lzma.open if path.suffix == ".xz" else open)(path, "rt", encoding="utf-8") as f:
            first = json.loads(f.readline())
        doc = task.test_docs()[0]
        if name == "lambada_openai":
            assert task.doc_to_text(doc) + task.doc_to_target(doc) == first["text"]
        elif name == "winogrande":
            assert task.doc_to_choice(doc) == first["contexts"] and task.doc_to_text(doc) == first["label"]
            assert task.doc_to_target(doc) == first["continuation"]
        else:
            assert task.doc_to_text(doc) == first["context"] and task.doc_to_choice(doc) == first["choices"]
            assert task.doc_to_target(doc) == first["label"]
        assert len(task.test_docs()) > 400


def test_compare_labels_multi_seed_runs_by_recipe_and_seed():
    from averis.eval.table import _model_label

    assert _model_label({"run": "/tmp/runs/smollm2/averis/seed0", "step": 943}) == "averis/seed0 (step 943)"
    assert _model_label({"run": "/tmp/runs/smollm2/averis", "step": 943}) == "averis (step 943)"
    assert _model_label({"model_name": "smollm2-135m"}) == "smollm2-135m"


def test_paired_difference_by_hand():
    from averis.eval.table import Z95, paired_difference

    a = {"per_doc": {"piqa": "1100", "winogrande": "10"}}
    b = {"per_doc": {"piqa": "1000", "winogrande": "01", "sciq": "1"}}
    got = paired_difference(a, b)
    # piqa: d = 0,1,0,0: mean 1/4, sample variance (3 * 1/16 + 9/16) / 3 = 1/4, se sqrt(1/4 / 4) = 1/4
    assert got["tasks"]["piqa"] == {"n": 4, "diff": 0.25, "se": 0.25, "low": 0.25 - Z95 * 0.25,
                                    "high": 0.25 + Z95 * 0.25}
    # winogrande: d = 1, -1: mean 0, variance 2, se 1; sciq only on one side: left out
    assert got["tasks"]["winogrande"]["se"] == 1.0 and "sciq" not in got["tasks"]
    assert got["average"]["diff"] == 0.125 and got["average"]["se"] == math.sqrt(0.0625 + 1.0) / 2
    with pytest.raises(ValueError, match="4 documents against 3"):
        paired_difference(a, {"per_doc": {"piqa": "100"}})


def test_files_without_per_document_scores_are_compared_unpaired(tmp_path, capsys):
    from averis.eval.table import Z95

    def write(name, acc, se, avg_se):
        body = {"tasks": {"piqa": {"acc": acc, "acc_stderr": se, "n": 4, "headline": "acc"}}, "average": acc,
                "average_stderr": avg_se, "model_name": name}
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps(body))

    write("old", 0.5, 0.03, 0.03)
    write("new", 0.56, 0.04, 0.04)
    assert main(["eval", "--compare", str(tmp_path / "old"), str(tmp_path / "new"),
                 "--paired-against", str(tmp_path / "old")]) == 0
    out = capsys.readouterr().out
    assert "**Paired against" not in out and "**Unpaired against old**" in out
    # by hand: 0.56 - 0.50 = +6.0 points, se sqrt(0.03^2 + 0.04^2) = 0.05, interval 6 -+ 1.96 * 5 points
    low, high = 0.06 - Z95 * 0.05, 0.06 + Z95 * 0.05
    row = f"+6.0 [{100 * low:+.1f}, {100 * high:+.1f}]"
    assert row == "+6.0 [-3.8, +15.8]"
    assert f"| new | {row} | {row} |" in out
    assert "| old |" not in out.split("**Unpaired")[1]  # the reference is not compared with itself
