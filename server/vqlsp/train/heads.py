"""Fit linear heads on frozen features (multinomial logistic regression).

Features are standardized for the fit and the scaling is folded back into the
linear layer, so the head reads the model's raw pooled states. The L2 strength
and the pooling mode are chosen by validation accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class LinearFit:
    weight: torch.Tensor  # (C, D) over raw features
    bias: torch.Tensor  # (C,)
    l2: float
    val_acc: float


def fit_logistic(
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, n_classes: int
) -> LinearFit:
    """Multinomial logistic regression by L-BFGS, L2 strength chosen on validation."""
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    zt, zv = (x_train - mean) / std, (x_val - mean) / std
    best: LinearFit | None = None
    for l2 in L2_GRID:
        w = torch.zeros(n_classes, zt.shape[1], requires_grad=True)
        b = torch.zeros(n_classes, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure(w=w, b=b, opt=opt, l2=l2):
            opt.zero_grad()
            loss = F.cross_entropy(zt @ w.T + b, y_train) + l2 * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            acc = ((zv @ w.T + b).argmax(1) == y_val).float().mean().item()
            if best is None or acc > best.val_acc:
                raw_w = w / std  # fold the standardization into the head
                best = LinearFit(raw_w.detach(), (b - raw_w @ mean).detach(), l2, acc)
    assert best is not None
    return best


def accuracy(head: torch.nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (head.linear(features).argmax(1) == labels).float().mean().item()
