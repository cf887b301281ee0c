"""Per-token building blocks of the normalized transformer: norms, RoPE, MLPs.

Everything here acts row by row (on the last dimension), so the engine can run
it on a gathered subset of rows and scatter the result back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class RMSNorm(nn.Module):
    """Llama's RMSNorm, computed in float32 like transformers does."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def make_norm(cfg: ModelConfig, dim: int) -> nn.Module:
    if cfg.norm == "layernorm":
        return nn.LayerNorm(dim, eps=cfg.norm_eps)
    return RMSNorm(dim, cfg.norm_eps)


class Mlp(nn.Module):
    """OPT's ReLU MLP (fc1 -> relu -> fc2) or Llama's SwiGLU (down(silu(gate) * up))."""

    def __init__(self, cfg: ModelConfig, d_ff: int | None = None):
        super().__init__()
        self.kind = cfg.mlp
        d_ff = d_ff or cfg.d_ff  # narrower for an ACM learner
        if cfg.mlp == "relu":
            self.fc1 = nn.Linear(cfg.d_model, d_ff, bias=cfg.mlp_bias)
            self.fc2 = nn.Linear(d_ff, cfg.d_model, bias=cfg.mlp_bias)
        else:
            self.gate = nn.Linear(cfg.d_model, d_ff, bias=cfg.mlp_bias)
            self.up = nn.Linear(cfg.d_model, d_ff, bias=cfg.mlp_bias)
            self.down = nn.Linear(d_ff, cfg.d_model, bias=cfg.mlp_bias)
        # gate and up as one layer where the weights allow it (``q4.fuse_projections``)
        self.gate_up: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "relu":
            return self.fc2(F.relu(self.fc1(x)))
        if self.gate_up is not None:
            gate, up = self.gate_up(x).chunk(2, -1)
            return self.down(F.silu(gate).mul_(up))
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Rope(nn.Module):
    """Rotary position embedding (rotate-half form, as in transformers' Llama).

    ``inv_freq`` is a saved buffer: converters copy it from the source model, so
    every rope scaling type whose frequencies do not depend on sequence length
    (default, linear, llama3, yarn, longrope's short factor) is exact.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dim = cfg.d_head
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self.register_buffer("inv_freq", inv_freq)
        self.scale = cfg.attn_scale

    def cos_sin(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (..., T) -> cos, sin (..., T, 1, Dh), broadcastable over heads."""
        freqs = position_ids.float().unsqueeze(-1) * self.inv_freq  # (..., T, Dh/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.scale).unsqueeze(-2), (emb.sin() * self.scale).unsqueeze(-2)

    @staticmethod
    def apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate x (..., T, H, Dh) by the angles in cos/sin (..., T, 1, Dh)."""
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin
