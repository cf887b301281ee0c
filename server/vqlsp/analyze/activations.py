"""How many MLP activations are zero or near zero, per layer, and how they are spread.

The activation measured is the MLP's hidden vector, the input of its down
projection: ``relu(fc1 x)`` in OPT's ReLU MLP (exact zeros are the point: a
unit that is zero contributes nothing and could be skipped) and
``silu(gate x) * up x`` in SwiGLU (SmolLM2), which is almost never exactly zero,
so near-zeros are counted below a few absolute thresholds ``EPSILONS``.

Per layer: the share of exact zeros and of ``|h| <= eps``, a histogram of
``log10 |h|`` over the non-zero values, and each token's own near-zero share
(so the spread over tokens, not only the mean, is reported). A token's
*active share* (units above ``main_eps``, averaged over layers) is the compute a
per-token adaptive-width method that skips inactive units would spend on it.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

EPSILONS = (1e-3, 1e-2, 1e-1)  # |h| at or below counts as near zero
MAIN_EPS = {"relu": 0.0, "swiglu": 1e-2}  # the threshold of the per-token active share
LOG_BINS = np.linspace(-6.0, 2.0, 33)  # log10 |h| histogram edges (values beyond land in the end bins)
TOKEN_SHARE_QUANTILES = (0.1, 0.5, 0.9)


def down_projection(mlp: nn.Module) -> nn.Module | None:
    """The module whose input is the MLP's hidden activation (None for MLPs of another form)."""
    return getattr(mlp, "down", None) or getattr(mlp, "fc2", None)


class ActivationStats:
    """Counts over many passes, per layer (``add`` one layer's activations at a time)."""

    def __init__(self, kind: str, n_layers: int):
        self.kind = kind
        self.main_eps = MAIN_EPS.get(kind, EPSILONS[1])
        self.values = np.zeros(n_layers, dtype=np.int64)
        self.zeros = np.zeros(n_layers, dtype=np.int64)
        self.near = np.zeros((n_layers, len(EPSILONS)), dtype=np.int64)
        self.hist = np.zeros((n_layers, len(LOG_BINS) + 1), dtype=np.int64)
        self.token_shares: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.layers_seen = 0

    def add(self, layer: int, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Count layer ``layer``'s activations h (B, T, F) at the rows where ``mask`` (B, T) is
        true. Returns each row's active share (B, T) (above ``main_eps``)."""
        a = h.detach().abs().float()
        active = (a > self.main_eps).float().mean(-1)  # (B, T)
        rows = a[mask]  # (N, F)
        self.layers_seen = max(self.layers_seen, layer + 1)
        self.values[layer] += rows.numel()
        self.zeros[layer] += int((rows == 0).sum())
        for k, eps in enumerate(EPSILONS):
            self.near[layer, k] += int((rows <= eps).sum())
        nonzero = rows[rows > 0]
        if nonzero.numel():
            bins = np.digitize(torch.log10(nonzero).cpu().numpy(), LOG_BINS)
            self.hist[layer] += np.bincount(bins, minlength=len(LOG_BINS) + 1)
        self.token_shares[layer].append(1.0 - active[mask].cpu().numpy())
        return active

    @contextmanager
    def hooked(self, blocks, mask: torch.Tensor, active: list[torch.Tensor | None]):
        """Hook the down projection of each block's MLP while the context is open; each layer's
        per-row active share (B, T) is written to ``active[layer]``."""
        handles = []
        for layer, block in enumerate(blocks):
            target = down_projection(block.mlp)
            if target is None:
                continue

            def pre_hook(module, inputs, layer=layer):
                active[layer] = self.add(layer, inputs[0], mask)

            handles.append(target.register_forward_pre_hook(pre_hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def summary(self) -> dict:
        """Per layer: zero and near-zero shares, the log10|h| histogram, token-share quantiles."""
        layers = []
        for layer in range(self.layers_seen):
            n = max(int(self.values[layer]), 1)
            shares = np.concatenate(self.token_shares[layer]) if self.token_shares[layer] else np.zeros(1)
            layers.append({
                "layer": layer + 1,
                "values": int(self.values[layer]),
                "zero_share": self.zeros[layer] / n,
                "near_zero_share": {str(eps): self.near[layer, k] / n for k, eps in enumerate(EPSILONS)},
                "log10_abs_hist": self.hist[layer].tolist(),
                "token_near_zero_share_quantiles": {
                    str(q): float(np.quantile(shares, q)) for q in TOKEN_SHARE_QUANTILES
                },
            })
        return {
            "kind": self.kind, "epsilons": list(EPSILONS), "main_eps": self.main_eps,
            "log10_bins": LOG_BINS.tolist(), "layers": layers,
        }
