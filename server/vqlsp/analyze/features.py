"""The per-example figures one dense pass gives, for the two tasks' examples.

A *document* example is a token sequence (a BBC article's first tokens); its probe
features are its mean-pooled states per depth. A *span* example is a sentence in
a pseudo-document of sentiment snippets (``train.sentiment.SpanDocument``); its
features are the mean states of its tokens, computed in context, as the span
head reads them. Both also get the per-token meters of the pass (MLP active
share, ACM learners), averaged over the example's tokens and the model's layers.
Sequences run one at a time (no padding; on the CPU batching gains little).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..model.transformer import VQTransformer
from ..train.sentiment import SpanDocument
from .activations import ActivationStats
from .trace import trace


@dataclass
class PassFigures:
    """Per example: probe features per depth, and per-token meters (one array per example)."""

    features: dict[int, list[torch.Tensor]] = field(default_factory=dict)  # depth -> [(D,)]
    active: list[np.ndarray] = field(default_factory=list)  # per example: (tokens,) active share
    learners: list[np.ndarray] = field(default_factory=list)  # per example: (tokens,) learners per layer (ACM)

    def stacked(self) -> dict[int, torch.Tensor]:
        return {d: torch.stack(v) for d, v in self.features.items()}


def _per_token(values: torch.Tensor | None, depth: int) -> np.ndarray | None:
    """(L, 1, T) per-layer meter -> (T,) mean over the layers the model runs."""
    if values is None:
        return None
    return values[:depth, 0].mean(0).cpu().numpy()


def _record(out: PassFigures, feats: dict[int, torch.Tensor], active, learners) -> None:
    for d, f in feats.items():
        out.features.setdefault(d, []).append(f.float().cpu())
    if active is not None:
        out.active.append(active)
    if learners is not None:
        out.learners.append(learners)


@torch.no_grad()
def document_pass(
    model: VQTransformer, seqs: Sequence[Sequence[int]], *, layers: int | None = None,
    activations: ActivationStats | None = None,
) -> PassFigures:
    """Mean-pooled states at depths 1..depth and per-token meters of each sequence."""
    depth = model.cfg.depth
    out = PassFigures()
    for seq in seqs:
        ids = torch.tensor([list(seq)], device=model.device)
        tr = trace(model, ids, depths=range(1, depth + 1), layers=layers or depth, activations=activations)
        active, learners = _per_token(tr.active, depth), _per_token(tr.learners, depth)
        _record(out, {d: h[0].mean(0) for d, h in tr.hidden.items()},
                None if active is None else active, None if learners is None else learners)
    return out


@torch.no_grad()
def span_pass(
    model: VQTransformer, docs: Sequence[SpanDocument], *, layers: int | None = None,
    activations: ActivationStats | None = None,
) -> tuple[PassFigures, torch.Tensor, list[tuple[int, int, int]]]:
    """Each span's mean states at depths 1..depth and per-token meters; the span labels; and
    where each span is: (document index, token start, token end)."""
    depth = model.cfg.depth
    out = PassFigures()
    labels: list[int] = []
    where: list[tuple[int, int, int]] = []
    for k, doc in enumerate(docs):
        ids = torch.tensor([doc.ids], device=model.device)
        tr = trace(model, ids, depths=range(1, depth + 1), layers=layers or depth, activations=activations)
        active, learners = _per_token(tr.active, depth), _per_token(tr.learners, depth)
        for (s, e), label in zip(doc.spans, doc.labels):
            _record(out, {d: h[0, s:e].mean(0) for d, h in tr.hidden.items()},
                    None if active is None else active[s:e], None if learners is None else learners[s:e])
            labels.append(label)
            where.append((k, s, e))
    return out, torch.tensor(labels), where
