"""The dense reference of a document analysed in sections: what the server's results must equal.

Each section is a separate sequence to the model (an independent incremental
session in the server), so the reference runs a fresh dense forward per
section, on exact position ids, and applies the document head to all the
sections' final states together (mean pooling over the whole document, or the
last token's state). Used by tests and ``vqlsp bench typing``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def dense_document(model, ids: Sequence[int], sections: Sequence[tuple[int, int]]) -> dict[str, float]:
    """Document-head probabilities (label -> probability) of ``ids`` cut at ``sections``
    (``[token_start, token_end)`` ranges that tile ``ids``)."""
    head = model.document_head
    if head is None:
        return {}
    states = [
        model(torch.tensor([list(ids[a:b])], device=model.device)).hidden[0] for a, b in sections if b > a
    ]
    logits = head(torch.cat(states)[None])[0] if states else head.linear.bias
    return dict(zip(head.labels, torch.softmax(logits.float(), -1).tolist()))
