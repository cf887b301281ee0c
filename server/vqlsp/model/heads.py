"""Classification heads over the final hidden states.

Both are linear, so they are cheap to keep up to date incrementally: the
document head pools (a running sum for ``mean``), the span head averages each
sentence's / paragraph's token states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

Pooling = Literal["mean", "last"]
POOLINGS: tuple[str, ...] = ("mean", "last")
KINDS = ("document", "span")


class DocumentHead(nn.Module):
    """A label and probabilities for the whole document."""

    kind = "document"

    def __init__(self, dim: int, labels: Sequence[str], pooling: Pooling = "mean", name: str = "document"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.labels = list(labels)
        self.pooling = pooling
        self.name = name  # what clients see it as (the classification's ``heads``, diagnostics)
        self.linear = nn.Linear(dim, len(self.labels))

    def pool(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) states (rows past ``lengths`` are padding) -> (B, D) pooled features."""
        b, t, _ = hidden.shape
        if lengths is None:
            lengths = torch.full((b,), t, device=hidden.device)
        if self.pooling == "last":
            return hidden[torch.arange(b, device=hidden.device), (lengths - 1).clamp_min(0)]
        mask = torch.arange(t, device=hidden.device) < lengths.unsqueeze(1)  # (B, T)
        total = (hidden * mask.unsqueeze(-1)).sum(1)
        return total / lengths.clamp_min(1).unsqueeze(1).to(hidden.dtype)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> logits (B, n_labels)."""
        return self.linear(self.pool(hidden, lengths))

    def config(self) -> dict:
        return {"labels": self.labels, "pooling": self.pooling, "name": self.name}


class SpanHead(nn.Module):
    """A label per span (sentence or paragraph), from the mean of its tokens' final states."""

    kind = "span"

    def __init__(
        self, dim: int, labels: Sequence[str], unit: Literal["sentence", "paragraph"] = "sentence", name: str = "span"
    ):
        super().__init__()
        self.labels = list(labels)
        self.unit = unit
        self.name = name
        self.linear = nn.Linear(dim, len(self.labels))

    @staticmethod
    def pool(hidden: torch.Tensor, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
        """(T, D) states and token spans [start, end) -> (n_spans, D) mean features."""
        if not spans:
            return hidden.new_zeros(0, hidden.shape[-1])
        csum = torch.cat([hidden.new_zeros(1, hidden.shape[-1]), hidden.cumsum(0)])
        starts = torch.tensor([s for s, _ in spans], device=hidden.device)
        ends = torch.tensor([e for _, e in spans], device=hidden.device)
        if (ends <= starts).any() or ends.max() > hidden.shape[0]:
            raise ValueError("spans must be non-empty token ranges inside the sequence")
        return (csum[ends] - csum[starts]) / (ends - starts).unsqueeze(1).to(hidden.dtype)

    def forward(self, hidden: torch.Tensor, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
        """(T, D) states -> logits (n_spans, n_labels)."""
        return self.linear(self.pool(hidden, spans))

    def config(self) -> dict:
        return {"labels": self.labels, "unit": self.unit, "name": self.name}
