"""Strict weight loading: every key present, every shape equal, nothing pickled."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn


class WeightMismatch(ValueError):
    """A state dict does not fit the model it is loaded into."""


def load_checked(
    model: nn.Module,
    weights: Mapping[str, torch.Tensor],
    allow_missing: Callable[[str], bool] = lambda name: False,
) -> None:
    """Copy ``weights`` into ``model``, checking names and shapes of every tensor."""
    target = model.state_dict()
    unexpected = sorted(set(weights) - set(target))
    missing = sorted(k for k in set(target) - set(weights) if not allow_missing(k))
    wrong = [
        f"{k}: {tuple(weights[k].shape)} != {tuple(target[k].shape)}"
        for k in weights
        if k in target and weights[k].shape != target[k].shape
    ]
    problems = []
    if unexpected:
        problems.append(f"unexpected tensors: {', '.join(unexpected[:5])}")
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:5])}")
    if wrong:
        problems.append(f"shape mismatches: {'; '.join(wrong[:5])}")
    if problems:
        raise WeightMismatch("; ".join(problems))
    with torch.no_grad():
        for name, tensor in weights.items():
            target[name].copy_(tensor)
