"""Dense predictions from token ids: the reference every incremental result must equal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .transformer import VQTransformer


@dataclass
class DocumentPrediction:
    label: str
    probabilities: dict[str, float]
    tokens: int


class NoDocumentHead(ValueError):
    """The model has no document head to classify with."""


@torch.no_grad()
def classify_ids(
    model: VQTransformer, ids: Sequence[int], position_ids: Sequence[int] | None = None, *, vq: bool | None = None
) -> DocumentPrediction:
    """Label and probabilities of the document head for one token sequence (dense forward)."""
    head = model.document_head
    if head is None:
        raise NoDocumentHead("this model has no document head; fit one first (vqlsp train)")
    if not ids:
        probs = torch.softmax(head.linear.bias.float(), -1)  # an empty document: the prior
    else:
        x = torch.tensor([list(ids)], device=model.device)
        pos = None if position_ids is None else torch.tensor([list(position_ids)], device=model.device)
        hidden = model(x, pos, vq=vq).hidden
        probs = torch.softmax(head(hidden).float()[0], -1)
    values = probs.cpu().tolist()
    best = max(range(len(values)), key=values.__getitem__)
    return DocumentPrediction(head.labels[best], dict(zip(head.labels, values)), len(ids))
