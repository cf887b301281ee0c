"""Low-rank adapters on a block's projections, for VQ-aware fine-tuning.

The attention projections q, k, v, o always get one; the MLP's (``lora_targets(...,
mlp=True)``) optionally, so the layers after a quantizer can learn to read its codes.
Fine-tuning moves W to W + (alpha / r) B A with A (r, in), B (out, r), B = 0 at
the start, so the model begins as the base. Only the adapters (plus the codebooks,
and the heads for the task term) train, the update of each matrix stays rank r, and the shipped
checkpoint stores it as two small factors (``checkpoint`` low-rank deltas)
instead of a 135M-parameter copy. ``merge_lora`` folds the adapters back into
plain ``nn.Linear`` layers before saving. Reference: Hu et al., LoRA, arXiv 2106.09685.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ..model.config import ModelConfig
from ..model.transformer import VQTransformer

TARGETS = ("q", "k", "v", "o")  # the attention projections (the default)
MLP_TARGETS = {"swiglu": ("mlp.gate", "mlp.up", "mlp.down"), "relu": ("mlp.fc1", "mlp.fc2")}


def lora_targets(cfg: ModelConfig, mlp: bool = False) -> tuple[str, ...]:
    """The projections of a block that get adapters: attention, and the MLP's with ``mlp``."""
    return TARGETS + (MLP_TARGETS[cfg.mlp] if mlp else ())


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features, device=base.weight.device) / math.sqrt(base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        self.scale = alpha / rank
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.enabled:
            y = y + (x @ self.lora_a.T @ self.lora_b.T) * self.scale
        return y

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight += (self.lora_b @ self.lora_a) * self.scale
        return self.base


def add_lora(model: VQTransformer, rank: int, alpha: float | None = None, targets: Sequence[str] = TARGETS) -> None:
    """Wrap each block's ``targets`` projections (paths inside the block, e.g. ``q`` or
    ``mlp.up``) in place; the base weights are frozen."""
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.blocks:
        for name in targets:
            path, _, leaf = name.rpartition(".")
            owner = block.get_submodule(path)
            setattr(owner, leaf, LoRALinear(getattr(owner, leaf), rank, alpha or 2.0 * rank))


def merge_lora(model: VQTransformer) -> None:
    """Fold every adapter into its linear layer, wherever it sits."""
    for owner in list(model.modules()):
        for name, module in list(owner.named_children()):
            if isinstance(module, LoRALinear):
                setattr(owner, name, module.merged())


def lora_modules(model: nn.Module) -> Iterator[LoRALinear]:
    return (m for m in model.modules() if isinstance(m, LoRALinear))


@contextmanager
def lora_disabled(model: nn.Module):
    """Run the base weights (the dense teacher) without copying the model."""
    modules = list(lora_modules(model))
    for m in modules:
        m.enabled = False
    try:
        yield
    finally:
        for m in modules:
            m.enabled = True
