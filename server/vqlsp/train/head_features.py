"""A model's frozen features of labelled texts, for ``vqlsp train-head``, cached on disk.

Document examples are read one text per sequence (at most ``max_tokens``: the
server's section size, so a text reads as one section does), and pooled both
ways a document head may read them (mean, last token). Span examples are read
as the server reads sentences, in context: the texts are run together into
pseudo-documents of ``max_tokens`` (``sentiment.pack_documents``) and each one's
tokens are averaged.

**Precision.** The forward pass is nearly all matmuls, and on a CPU with
bfloat16 dot products (AVX512-BF16, AMX) they run about twice as fast in
bfloat16 (measured on this project's AMD EPYC: 1.5x the whole forward). So
``precision="bf16"`` runs the blocks' linear layers in bfloat16 (their inputs
rounded, float32 accumulation and output; norms, attention, the VQ search and
the residual stream stay float32). Those features are close to, not equal to,
what the server computes (a few VQ codes flip), so ``train_head`` uses them only
to fit the head, and computes the validation rows in ``"fp32"``: the reported
accuracy is the server's. Either way the model is used with float32 weights
(the 4-bit base dequantized once and its deltas merged: the server's function up
to float rounding), which is faster for full batches than the 4-bit kernel.

**Cache.** Computing features is the slow part; fitting a head takes seconds. So
features are cached under ``<cache>/head-features``, keyed by the checkpoint's
fingerprint (``checkpoint_fingerprint``: its files and its base's, read without
loading the model), the kind, ``max_tokens``, the precision and the texts. An
entry also holds the model's ``probe`` (``head_files.model_probe``, which a head
file must carry), so a run whose features are all cached never loads the model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..model.base_weights import cache_dir, gguf_path
from ..model.checkpoint import DEFAULT_BASE, WEIGHTS, base_directory, read_config
from ..model.head_files import model_probe
from ..model.registry import model_dir
from ..model.transformer import VQTransformer
from .data import Example
from .features import document_features, span_features
from .sentiment import pack_documents

PACK_SEED = 0  # the order texts are run together in (span features); fixed, so the cache holds
# Padded tokens per forward batch. On a CPU, small batches: a batch of 4096 tokens allocates
# tensors of tens of MB that glibc maps and unmaps on every use, and the page faults cost ~15%
# more CPU time (measured: 1,064-1,138 vs 1,253-1,338 tokens per CPU-second in bf16 at 1024).
BATCH_TOKENS = {"cpu": 1024, "cuda": 4096}
PRECISIONS = ("fp32", "bf16")
CACHE_VERSION = 2  # bump when features of the same inputs change


def checkpoint_fingerprint(path: str | Path | None) -> str:
    """What a checkpoint's features depend on, without loading it: the bytes of its config and
    weights, and its base's (a checkpoint base recursively; the default GGUF base by its file)."""
    digest = hashlib.sha256()
    directory = model_dir(path)
    seen: set[Path] = set()
    while directory is not None and directory.resolve() not in seen:
        seen.add(directory.resolve())
        digest.update((directory / "config.json").read_bytes())
        weights = directory / WEIGHTS
        if weights.is_file():
            digest.update(hashlib.sha256(weights.read_bytes()).digest())
        source = (read_config(directory).get("base") or {}).get("source")
        if source == DEFAULT_BASE:
            gguf = gguf_path()
            stat = gguf.stat()
            digest.update(f"{gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        elif source is not None:
            digest.update(source.encode())
        directory = base_directory(source)
    return digest.hexdigest()


def features_key(fingerprint: str, kind: str, max_tokens: int, precision: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, fingerprint, kind, max_tokens, precision, PACK_SEED]).encode())
    for text in texts:
        digest.update(len(text).to_bytes(8, "little") + text.encode("utf-8"))
    return digest.hexdigest()[:32]


def feature_cache(key: str) -> Path:
    return cache_dir() / "head-features" / f"{key}.safetensors"


class Bf16Linear(nn.Module):
    """A linear layer computed in bfloat16 (float32 output); ``weight`` is any float layer's
    effective weight (``nn.Linear``, ``PackedLinear``, ``Q4Linear`` with its delta)."""

    def __init__(self, linear: nn.Module):
        super().__init__()
        self.weight = linear.weight.detach().float().to(torch.bfloat16)
        self.bias = None if linear.bias is None else linear.bias.detach().float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x.to(torch.bfloat16), self.weight).float()
        return y if self.bias is None else y + self.bias


@contextmanager
def bf16_linears(model: VQTransformer) -> Iterator[VQTransformer]:
    """The model with its used blocks' linear layers in bfloat16, restored on exit."""
    swapped = []
    for block in model.blocks[: model.cfg.depth]:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if hasattr(child, "in_features") and hasattr(child, "out_features"):
                    swapped.append((parent, name, child))
                    setattr(parent, name, Bf16Linear(child))
    try:
        yield model
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def example_features(
    load: Callable[[], VQTransformer], fingerprint: str, tokenizer, kind: str, texts: Sequence[str], *,
    precision: str = "fp32", max_tokens: int = 256, progress: bool = True, use_cache: bool = True,
    desc: str = "features",
) -> tuple[dict[str, torch.Tensor], torch.Tensor, bool]:
    """Features of every text, in order, the model's probe, and whether they came from the cache.

    ``kind="document"``: ``{"mean": (N, D), "last": (N, D)}``; ``kind="span"``:
    ``{"mean": (N, D)}``. ``load()`` gives the model (called only when something must be
    computed); ``fingerprint`` is its ``checkpoint_fingerprint``. ``tokenizer`` is a
    ``tokenizers.Tokenizer``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    path = feature_cache(features_key(fingerprint, kind, max_tokens, precision, texts))
    if use_cache and path.is_file():
        try:
            stored = load_file(str(path))
            probe = stored.pop("probe")
            return stored, probe, True
        except (SafetensorError, OSError, KeyError):
            pass  # a damaged cache entry is computed again
    model = load()
    if precision == "bf16":
        with bf16_linears(model):
            features = _compute(model, tokenizer, kind, texts, max_tokens, progress, desc)
    else:
        features = _compute(model, tokenizer, kind, texts, max_tokens, progress, desc)
    probe = model_probe(model)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({**features, "probe": probe}, str(tmp))
        tmp.replace(path)
    return features, probe, False


def _compute(model: VQTransformer, tokenizer, kind: str, texts: Sequence[str], max_tokens: int, progress: bool,
             desc: str) -> dict[str, torch.Tensor]:
    depth = model.cfg.depth
    vq = model.cfg.vq.enabled
    batch = dict(batch_tokens=BATCH_TOKENS.get(model.device.type, 4096), progress=progress, desc=desc)
    if kind == "document":
        ids = [tokenizer.encode(text, add_special_tokens=False).ids[:max_tokens] for text in texts]
        by_pooling = document_features(model, ids, [depth], vq=vq, **batch)[depth]
        return {p: f.contiguous() for p, f in by_pooling.items()}
    examples = [Example(text, "_", str(i)) for i, text in enumerate(texts)]
    docs = pack_documents(examples, tokenizer, max_tokens=max_tokens, seed=PACK_SEED, labels=["_"])
    feats, _ = span_features(model, docs, [depth], vq=vq, **batch)
    order = [i for doc in docs for i in doc.examples]
    if sorted(order) != list(range(len(texts))):  # every text is some document's span
        raise RuntimeError("packing lost some texts; this is a bug")
    mean = torch.zeros(len(texts), model.hidden_dim)
    mean[torch.tensor(order, dtype=torch.long)] = feats[depth]
    return {"mean": mean}
