"""A fake ACM MLP for the meters' tests: the interface the ACM models expose, nothing more.

``FakeAcmMlp`` wraps the block's own MLP and, after each forward over rows (..., T, D),
sets ``last_learners`` (..., T): a count that depends only on the row's input (so the
incremental engine and a dense pass must agree on it): 1 + (x[..., 0] > 0) + (x[..., 1] > 0).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vqlsp.model.transformer import VQTransformer


class FakeAcmMlp(nn.Module):
    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.inner = mlp
        self.last_learners: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_learners = 1 + (x[..., 0] > 0).long() + (x[..., 1] > 0).long()
        return self.inner(x)


def with_fake_acm(model: VQTransformer) -> VQTransformer:
    """A copy of ``model`` whose every MLP counts learners."""
    acm = copy.deepcopy(model)
    for block in acm.blocks:
        block.mlp = FakeAcmMlp(block.mlp)
    return acm
