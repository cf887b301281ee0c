"""A tiny random vqlsp checkpoint for the editor-client tests: fast to load and to run.

A 2-layer random Llama-form model with a document head (three labels) and a
sentence span head, and a byte-level tokenizer without merges (one token per
UTF-8 byte, vocabulary 256), saved with ``save_checkpoint`` plus its own
``tokenizer.json``. Labels are random, but deterministic (fixed seed), which
is all a client test needs: a classification and diagnostics for every version.

Run as a script to write one for the Node smoke test::

    python tests/clients/tiny_model.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCUMENT_LABELS = ["business", "sport", "tech"]
SPAN_LABELS = ["neg", "pos"]


def byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def write_tiny_checkpoint(directory: str | Path) -> Path:
    import torch

    from vqlsp.model.checkpoint import save_checkpoint
    from vqlsp.model.config import ModelConfig
    from vqlsp.model.heads import DocumentHead, SpanHead
    from vqlsp.model.transformer import VQTransformer

    directory = Path(directory)
    torch.manual_seed(0)
    cfg = ModelConfig.tiny("llama", vocab_size=256, max_positions=1024)
    model = VQTransformer(cfg).eval()
    model.set_heads(
        DocumentHead(cfg.d_model, DOCUMENT_LABELS, "mean"),
        SpanHead(cfg.d_model, SPAN_LABELS, "sentence"),
    )
    save_checkpoint(model, directory, info={"note": "tiny random model for editor-client tests"})
    byte_tokenizer().save(str(directory / "tokenizer.json"))
    return directory


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/clients/tiny_model.py OUT_DIR")
    print(write_tiny_checkpoint(sys.argv[1]))
