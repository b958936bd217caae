"""Data: text sources (bundled sample, offline corpus, files, HF datasets), tokenizers, token files, batching."""

from .batching import WindowSampler, eval_starts
from .prepare import PreparedData, prepare
from .sources import bundled_files, corpus_dir, corpus_files, corpus_text, documents
from .tokenizer import ByteTokenizer, load_tokenizer, tokenizer_from_name, train_bpe
from .tokens import TokenFile, encode_documents, split_train_val, write_tokens

__all__ = ["WindowSampler", "eval_starts", "PreparedData", "prepare", "bundled_files", "corpus_dir", "corpus_files",
           "corpus_text", "documents", "ByteTokenizer", "load_tokenizer", "tokenizer_from_name", "train_bpe",
           "TokenFile", "encode_documents", "split_train_val", "write_tokens"]
