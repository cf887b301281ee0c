"""A model's frozen features of labelled texts, for ``vqlsp train-head``, cached on disk.

Document examples are read one text per sequence (at most ``max_tokens``: the
server's section size, so a text reads as one section does), and pooled both
ways a document head may read them (mean, last token). Span examples are read
as the server reads sentences, in context: the texts are run together into
pseudo-documents of ``max_tokens`` (``sentiment.pack_documents``) and each one's
tokens are averaged.

Computing features is the slow part (a forward pass per example); fitting a head
on them takes seconds. So features are cached under ``<cache>/head-features``,
keyed by the model (its configuration and what its states look like:
``head_files.model_probe``), the kind, ``max_tokens`` and the texts: a second
run with other settings (validation split, name, seed) reuses them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..model.base_weights import cache_dir
from ..model.head_files import model_probe
from ..model.transformer import VQTransformer
from .data import Example
from .features import document_features, span_features
from .sentiment import pack_documents

PACK_SEED = 0  # the order texts are run together in (span features); fixed, so the cache holds


def features_key(model: VQTransformer, kind: str, max_tokens: int, texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    probe = [round(v, 4) for v in model_probe(model).tolist()]  # rounding: thread counts sum differently
    digest.update(json.dumps([model.cfg.to_dict(), probe, kind, max_tokens, PACK_SEED]).encode())
    for text in texts:
        digest.update(len(text).to_bytes(8, "little") + text.encode("utf-8"))
    return digest.hexdigest()[:32]


def feature_cache(key: str) -> Path:
    return cache_dir() / "head-features" / f"{key}.safetensors"


def example_features(
    model: VQTransformer, tokenizer, kind: str, texts: Sequence[str], *, max_tokens: int = 256,
    progress: bool = True, use_cache: bool = True,
) -> tuple[dict[str, torch.Tensor], bool]:
    """Features of every text, in order, and whether they came from the cache.

    ``kind="document"``: ``{"mean": (N, D), "last": (N, D)}``; ``kind="span"``:
    ``{"mean": (N, D)}``. ``tokenizer`` is a ``tokenizers.Tokenizer``."""
    key = features_key(model, kind, max_tokens, texts)
    path = feature_cache(key)
    if use_cache and path.is_file():
        try:
            return load_file(str(path)), True
        except (SafetensorError, OSError):
            pass  # a damaged cache entry is computed again
    depth = model.cfg.depth
    vq = model.cfg.vq.enabled
    if kind == "document":
        ids = [tokenizer.encode(text, add_special_tokens=False).ids[:max_tokens] for text in texts]
        by_pooling = document_features(model, ids, [depth], vq=vq, progress=progress, desc="features")[depth]
        features = {p: f.contiguous() for p, f in by_pooling.items()}
    else:
        examples = [Example(text, "_", str(i)) for i, text in enumerate(texts)]
        docs = pack_documents(examples, tokenizer, max_tokens=max_tokens, seed=PACK_SEED, labels=["_"])
        feats, _ = span_features(model, docs, [depth], vq=vq, progress=progress, desc="features")
        order = [i for doc in docs for i in doc.examples]
        if sorted(order) != list(range(len(texts))):  # every text is some document's span
            raise RuntimeError("packing lost some texts; this is a bug")
        mean = torch.zeros(len(texts), model.hidden_dim)
        mean[torch.tensor(order, dtype=torch.long)] = feats[depth]
        features = {"mean": mean}
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(features, str(tmp))
        tmp.replace(path)
    return features, False
