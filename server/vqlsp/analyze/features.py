"""The per-example figures one dense pass gives, for the two tasks' examples.

A *document* example is a token sequence (a BBC article's first tokens); its probe
features are its mean-pooled states per depth. A *span* example is a sentence in
a pseudo-document of sentiment snippets (``train.sentiment.SpanDocument``); its
features are the mean states of its tokens, computed in context, as the span
head reads them. Both also get the per-token meters of the pass (MLP active
share, ACM learners), averaged over the example's tokens and the model's layers.

Sequences run in right-padded batches of about ``BATCH_TOKENS`` tokens (causal
attention never lets a real row see the padding): a full pass over the CPU's
4-bit weights dequantizes each weight once per forward, so one sequence at a
time spent most of its time dequantizing (measured: 60% of a 167-token pass).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..model.transformer import VQTransformer
from ..train.sentiment import SpanDocument
from .activations import ActivationStats
from .trace import Trace, trace


@dataclass
class PassFigures:
    """Per example: probe features per depth, and per-token meters (one array per example)."""

    features: dict[int, list[torch.Tensor]] = field(default_factory=dict)  # depth -> [(D,)]
    active: list[np.ndarray] = field(default_factory=list)  # per example: (tokens,) active share
    learners: list[np.ndarray] = field(default_factory=list)  # per example: (tokens,) learners per layer (ACM)

    def stacked(self) -> dict[int, torch.Tensor]:
        return {d: torch.stack(v) for d, v in self.features.items()}


BATCH_TOKENS = 2048  # padded tokens per forward


def batched(lengths: Sequence[int], budget: int = BATCH_TOKENS) -> Iterator[list[int]]:
    """Consecutive indices in runs of about ``budget`` padded tokens (at least one each)."""
    batch: list[int] = []
    longest = 0
    for i, n in enumerate(lengths):
        if batch and (len(batch) + 1) * max(longest, n, 1) > budget:
            yield batch
            batch, longest = [], 0
        batch.append(i)
        longest = max(longest, n)
    if batch:
        yield batch


def _padded(model: VQTransformer, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], device=model.device)
    ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long, device=model.device)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(list(s), dtype=torch.long, device=model.device)
    return ids, lengths


def _per_token(values: torch.Tensor | None, depth: int, row: int, length: int) -> np.ndarray | None:
    """(L, B, T) per-layer meter -> row ``row``'s (length,) mean over the layers the model runs."""
    if values is None:
        return None
    return values[:depth, row, :length].mean(0).cpu().numpy()


def _record(out: PassFigures, feats: dict[int, torch.Tensor], active, learners) -> None:
    for d, f in feats.items():
        out.features.setdefault(d, []).append(f.float().cpu())
    if active is not None:
        out.active.append(active)
    if learners is not None:
        out.learners.append(learners)


def _traces(model: VQTransformer, seqs: Sequence[Sequence[int]], layers: int | None,
            activations: ActivationStats | None, progress: bool, desc: str) -> Iterator[tuple[int, int, Trace]]:
    """(index, row, trace) for each sequence, in order: the traced batch and its row."""
    if any(len(s) == 0 for s in seqs):
        raise ValueError("a sequence to analyse is empty")
    depth = model.cfg.depth
    groups = list(batched([len(s) for s in seqs]))
    for group in tqdm(groups, desc=desc, disable=not progress):
        ids, lengths = _padded(model, [seqs[i] for i in group])
        tr = trace(model, ids, depths=range(1, depth + 1), layers=layers or depth, lengths=lengths,
                   activations=activations)
        for row, i in enumerate(group):
            yield i, row, tr


@torch.no_grad()
def document_pass(
    model: VQTransformer, seqs: Sequence[Sequence[int]], *, layers: int | None = None,
    activations: ActivationStats | None = None, progress: bool = False, desc: str = "articles",
) -> PassFigures:
    """Mean-pooled states at depths 1..depth and per-token meters of each sequence."""
    depth = model.cfg.depth
    out = PassFigures()
    for i, row, tr in _traces(model, seqs, layers, activations, progress, desc):
        n = len(seqs[i])
        _record(out, {d: h[row, :n].mean(0) for d, h in tr.hidden.items()},
                _per_token(tr.active, depth, row, n), _per_token(tr.learners, depth, row, n))
    return out


@torch.no_grad()
def span_pass(
    model: VQTransformer, docs: Sequence[SpanDocument], *, layers: int | None = None,
    activations: ActivationStats | None = None, progress: bool = False, desc: str = "snippet documents",
) -> tuple[PassFigures, torch.Tensor, list[tuple[int, int, int]]]:
    """Each span's mean states at depths 1..depth and per-token meters; the span labels; and
    where each span is: (document index, token start, token end)."""
    depth = model.cfg.depth
    out = PassFigures()
    labels: list[int] = []
    where: list[tuple[int, int, int]] = []
    for k, row, tr in _traces(model, [doc.ids for doc in docs], layers, activations, progress, desc):
        doc, n = docs[k], len(docs[k].ids)
        active, learners = _per_token(tr.active, depth, row, n), _per_token(tr.learners, depth, row, n)
        for (s, e), label in zip(doc.spans, doc.labels):
            _record(out, {d: h[row, s:e].mean(0) for d, h in tr.hidden.items()},
                    None if active is None else active[s:e], None if learners is None else learners[s:e])
            labels.append(label)
            where.append((k, s, e))
    return out, torch.tensor(labels), where
