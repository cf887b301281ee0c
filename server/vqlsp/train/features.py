"""Frozen features for the heads, at several depths from one forward pass.

A classifier may not need all the layers (early exit, ``ModelConfig.exit_layer``):
``hidden_by_depth`` runs the blocks once and applies the final norm at every depth
asked for, so accuracy against depth costs one pass per model. A model run with
``exit_layer = d`` gives exactly the depth-``d`` states here (VQ is causal in
depth: layer l's codes do not depend on later layers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm import tqdm

from ..model.heads import POOLINGS, DocumentHead, SpanHead
from ..model.transformer import VQTransformer
from .sentiment import SpanDocument


def hidden_by_depth(
    model: VQTransformer, ids: torch.Tensor, depths: Sequence[int], *, vq: bool, position_ids: torch.Tensor | None = None
) -> dict[int, torch.Tensor]:
    """Final-normed states (B, T, D) after each of ``depths`` layers for ids (B, T)."""
    if position_ids is None:
        position_ids = torch.arange(ids.shape[-1], device=ids.device).expand_as(ids)
    x = model.embed_rows(ids, position_ids)
    pos = model.positional(position_ids)
    out = {}
    for i, block in enumerate(model.blocks[: max(depths)]):
        x, _, _ = block(x, pos, vq)
        if i + 1 in depths:
            out[i + 1] = model.final_rows(x)
    return out


def _batches(lengths: Sequence[int], batch_tokens: int):
    """Indices grouped into batches of similar length (about ``batch_tokens`` padded tokens each)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) + 1) * max(1, lengths[i]) > batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _padded(model: VQTransformer, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([max(1, len(s)) for s in seqs], device=model.device)
    batch = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long, device=model.device)
    for row, s in enumerate(seqs):
        batch[row, : len(s)] = torch.tensor(list(s), dtype=torch.long, device=model.device)
    return batch, lengths


@torch.no_grad()
def document_features(
    model: VQTransformer,
    token_ids: Sequence[Sequence[int]],
    depths: Sequence[int],
    *,
    vq: bool,
    batch_tokens: int = 4096,
    progress: bool = True,
    desc: str = "document features",
) -> dict[int, dict[str, torch.Tensor]]:
    """{depth: {pooling: (N, D)}} for each sequence (right-padded; causal attention ignores padding)."""
    parts: dict[int, dict[str, list[torch.Tensor]]] = {d: {p: [] for p in POOLINGS} for d in depths}
    pool = DocumentHead(model.hidden_dim, ["_"])
    order: list[int] = []
    batches = list(_batches([len(s) for s in token_ids], batch_tokens))
    for idx in tqdm(batches, desc=desc, disable=not progress):
        order.extend(idx)
        batch, lengths = _padded(model, [token_ids[i] for i in idx])
        for d, hidden in hidden_by_depth(model, batch, depths, vq=vq).items():
            for pooling in POOLINGS:
                pool.pooling = pooling
                parts[d][pooling].append(pool.pool(hidden, lengths).float().cpu())
    inverse = torch.argsort(torch.tensor(order))
    return {d: {p: torch.cat(v)[inverse] for p, v in by.items()} for d, by in parts.items()}


@torch.no_grad()
def span_features(
    model: VQTransformer,
    docs: Sequence[SpanDocument],
    depths: Sequence[int],
    *,
    vq: bool,
    batch_tokens: int = 4096,
    progress: bool = True,
    desc: str = "span features",
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """{depth: (n_spans, D)} mean states of every span of every document, and the span labels,
    in document order (the spans of ``docs[0]`` first)."""
    per_doc: dict[int, dict[int, torch.Tensor]] = {}
    batches = list(_batches([len(doc.ids) for doc in docs], batch_tokens))
    for idx in tqdm(batches, desc=desc, disable=not progress):
        batch, _ = _padded(model, [docs[i].ids for i in idx])
        hidden = hidden_by_depth(model, batch, depths, vq=vq)
        for row, i in enumerate(idx):
            per_doc[i] = {d: SpanHead.pool(hidden[d][row], docs[i].spans).float().cpu() for d in depths}
    labels = torch.tensor([label for doc in docs for label in doc.labels], dtype=torch.long)
    if not docs:
        return {d: torch.zeros(0, model.hidden_dim) for d in depths}, labels
    return {d: torch.cat([per_doc[i][d] for i in range(len(docs))]) for d in depths}, labels
