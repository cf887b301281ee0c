"""Groupwise 4-bit weights: the default base's own format, kept instead of float32.

The default base comes from a Q4_1 GGUF: every 32 consecutive inputs of an output share
a scale and a minimum, ``W[n, k] = q * scale + minimum`` with ``q`` in 0..15. Its float32
copy holds exactly those values, so they can be taken back (``recover_q4``: minimum and
maximum of each group give both numbers) and kept at 0.75 bytes a weight (nibbles plus a
float32 scale and minimum per 32) instead of 4. A few gathered rows through a layer then
stream 5.3x fewer bytes (``native/q4_matmul.c`` dequantizes on the fly, float32
multiply-adds); a full batch dequantizes the weight once and uses BLAS.

Fine-tuning deltas stay factors, not merged: ``y = x W0^T + (x V^T) U^T`` with the
checkpoint's ``delta_u`` (out, r) and ``delta_v`` (r, in) (``checkpoint.py``), so the base
stays exactly 4-bit. The dense forward and the incremental engine call the same modules,
so they compute the same function (up to float summation order).

At load, a block's q, k and v, and its MLP's gate and up, are each concatenated into one
layer (``fuse_projections``): a few rows cost four kernel calls a layer instead of seven,
each reading its rows once.

A weight that is not 4-bit groupwise (a checkpoint with its own full weights) is refused
with ``NotQ4``: rounding it would change the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import native

GROUP = 32  # inputs per scale and minimum (Q4_1)
LEVELS = 15  # q in 0..15
# a recovered weight must equal the float32 one to this, relative to its group's range:
# GGUF's dequantization rounds q * scale + minimum twice in float32 (measured on the
# default base: at most 2.4e-7)
RECOVERY_TOLERANCE = 1e-5
# rows up to this go through the 4-bit kernel; more (a dense pass) dequantize once and use
# BLAS, where the weight's bytes are amortised over the rows anyway. Measured on SmolLM2's
# weights, one core (thread CPU time): the kernel takes 0.13-0.57x the time of dequantizing +
# BLAS at 64-128 rows, 0.85-0.89x at 512
KERNEL_MAX_ROWS = 512


class NotQ4(ValueError):
    """A weight is not groupwise 4-bit (Q4_1), so holding it in 4 bits would change it."""


def recover_q4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 4-bit form of a (N, K) weight that holds Q4_1 values: q (N, K) uint8, scale and
    minimum (N, K / 32) float32. Raises ``NotQ4`` when the weight is not of that form."""
    n, k = weight.shape
    if n % GROUP or k % GROUP:
        raise NotQ4(f"a ({n}, {k}) weight does not split into groups of {GROUP}")
    groups = weight.detach().float().reshape(n, k // GROUP, GROUP)
    minimum = groups.amin(-1)
    scale = (groups.amax(-1) - minimum) / LEVELS
    q = ((groups - minimum.unsqueeze(-1)) / scale.clamp_min(1e-30).unsqueeze(-1)).round_().clamp_(0, LEVELS)
    rebuilt = torch.addcmul(minimum.unsqueeze(-1), q, scale.unsqueeze(-1))
    error = ((rebuilt - groups).abs().amax(-1) / (scale * LEVELS).clamp_min(1e-30)).max().item()
    if error > RECOVERY_TOLERANCE:
        raise NotQ4(f"weight is not groupwise 4-bit (relative error {error:.2e} > {RECOVERY_TOLERANCE:.0e})")
    return q.to(torch.uint8).reshape(n, k), scale, minimum


def round_to_q4(weight: torch.Tensor) -> torch.Tensor:
    """Round a weight to the nearest Q4_1 values (for tests: a model whose weights are 4-bit)."""
    n, k = weight.shape
    groups = weight.detach().float().reshape(n, k // GROUP, GROUP)
    minimum = groups.amin(-1, keepdim=True)
    scale = (groups.amax(-1, keepdim=True) - minimum) / LEVELS
    q = ((groups - minimum) / scale.clamp_min(1e-30)).round_().clamp_(0, LEVELS)
    return torch.addcmul(minimum, q, scale).reshape(n, k).to(weight.dtype)


class Q4Linear(nn.Module):
    """``nn.Linear`` whose weight is groupwise 4-bit, plus an optional low-rank delta.

    Buffers in the kernel's layout (``native/q4_matmul.c``): ``q`` (N/32, K, 16) nibbles,
    ``scale`` and ``minimum`` (N/32, K/32, 32); ``delta_u`` (N, r), ``delta_v`` (r, K).
    Inference only (no gradient flows into the 4-bit weight).
    """

    def __init__(self, linear: nn.Linear, delta: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale, minimum = recover_q4(linear.weight)
        n, k = q.shape
        halves = q.reshape(n // GROUP, 2, GROUP // 2, k).permute(0, 3, 1, 2)  # (N/32, K, 2, 16)
        self.register_buffer("q", (halves[:, :, 0] | (halves[:, :, 1] << 4)).contiguous())
        grouped = (n // GROUP, GROUP, k // GROUP)
        self.register_buffer("scale", scale.reshape(grouped).transpose(1, 2).contiguous())
        self.register_buffer("minimum", minimum.reshape(grouped).transpose(1, 2).contiguous())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        u, v = delta if delta is not None else (None, None)
        if u is not None and (u.shape[0] != n or v.shape[1] != k or u.shape[1] != v.shape[0]):
            raise ValueError(f"delta factors {tuple(u.shape)} @ {tuple(v.shape)} do not fit a ({n}, {k}) weight")
        self.register_buffer("delta_u", None if u is None else u.detach().float().contiguous())
        self.register_buffer("delta_v", None if v is None else v.detach().float().contiguous())

    def base_weight(self) -> torch.Tensor:
        """The 4-bit weight as float32 (N, K), without the delta."""
        n, k = self.out_features, self.in_features
        low, high = (self.q & 15), (self.q >> 4)  # (N/32, K, 16) each
        q = torch.stack([low, high], 2).permute(0, 2, 3, 1).reshape(n, k).float()
        def per_weight(t: torch.Tensor) -> torch.Tensor:  # (N/32, K/32, 32) -> (N, K)
            return t.transpose(1, 2).reshape(n, k // GROUP).repeat_interleave(GROUP, 1)

        return torch.addcmul(per_weight(self.minimum), q, per_weight(self.scale))

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight (N, K) float32, delta included (a copy; for introspection)."""
        w = self.base_weight()
        return w if self.delta_u is None else w + self.delta_u @ self.delta_v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] <= KERNEL_MAX_ROWS and rows.device.type == "cpu" and native.available():
            y = native.q4_matmul(rows.float().contiguous(), self.q, self.scale, self.minimum, self.out_features)
        else:
            y = F.linear(rows.float(), self.base_weight())
        if self.delta_u is not None:
            y = y.addmm_(rows.float() @ self.delta_v.t(), self.delta_u.t())
        if self.bias is not None:
            y = y.add_(self.bias)
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        rank = 0 if self.delta_u is None else self.delta_u.shape[1]
        return f"in_features={self.in_features}, out_features={self.out_features}, delta_rank={rank}"

    @classmethod
    def concat(cls, parts: Sequence[Q4Linear]) -> Q4Linear:
        """One layer whose outputs are the ``parts``' outputs side by side, ``[y_1 | y_2 | ...]``:
        one kernel call reads every part's weights (q, k, v; an MLP's gate and up) where separate
        calls would each pay the call and re-read the rows. The 4-bit buffers are concatenated
        along the output blocks and each part's buffers become views of them (no second copy);
        the deltas become one (sum r, K) down factor and a block-diagonal up factor. The fused
        buffers are not persistent: the state dict stays that of the parts."""
        k = parts[0].in_features
        if any(p.in_features != k for p in parts):
            raise ValueError("fused parts must read the same inputs")
        fused = cls.__new__(cls)
        nn.Module.__init__(fused)
        fused.in_features, fused.out_features = k, sum(p.out_features for p in parts)
        for name in ("q", "scale", "minimum"):
            fused.register_buffer(name, torch.cat([getattr(p, name) for p in parts]), persistent=False)
        biases = [p.bias for p in parts]
        fused.bias = None
        if any(b is not None for b in biases):
            fused.bias = nn.Parameter(torch.cat([
                b.detach() if b is not None else torch.zeros(p.out_features) for b, p in zip(biases, parts)
            ]), requires_grad=False)
        u, v = None, None
        ranks = [0 if p.delta_u is None else p.delta_u.shape[1] for p in parts]
        if sum(ranks):
            u = torch.zeros(fused.out_features, sum(ranks))
            v = torch.cat([p.delta_v for p in parts if p.delta_v is not None])
            row = col = 0
            for p, r in zip(parts, ranks):
                if r:
                    u[row : row + p.out_features, col : col + r] = p.delta_u
                row, col = row + p.out_features, col + r
        fused.register_buffer("delta_u", u, persistent=False)
        fused.register_buffer("delta_v", v, persistent=False)
        start = 0
        for p in parts:  # the parts read the fused buffers: one copy of the weights
            blocks = slice(start // GROUP, (start + p.out_features) // GROUP)
            for name in ("q", "scale", "minimum"):
                setattr(p, name, getattr(fused, name)[blocks])
            start += p.out_features
        return fused


def quantize_linears(
    module: nn.Module, deltas: Mapping[str, tuple[torch.Tensor, torch.Tensor]] = {}, prefix: str = ""
) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``module`` by a ``Q4Linear`` (in place).

    ``deltas`` maps a linear's weight name (``prefix`` + its path + ``.weight``, as in the
    model's state dict) to its low-rank factors (u, v); the linear must then hold the base
    weight. Raises ``NotQ4`` if some weight is not 4-bit.
    """
    for path, child in list(module.named_modules()):
        for name, leaf in list(child.named_children()):
            if isinstance(leaf, nn.Linear):
                full = f"{prefix}{path + '.' if path else ''}{name}.weight"
                setattr(child, name, Q4Linear(leaf, deltas.get(full)))
    return module


def fuse_projections(block: nn.Module) -> None:
    """Give a transformer block one 4-bit layer for its q, k and v projections (``qkv_fused``)
    and its SwiGLU MLP one for gate and up (``gate_up``), where those are ``Q4Linear``: a few
    rows then cost two kernel calls instead of five. The block's forward uses them; the parts
    stay (their buffers are views of the fused ones)."""
    parts = [getattr(block, name, None) for name in ("q", "k", "v")]
    if all(isinstance(p, Q4Linear) for p in parts):
        block.qkv_fused = Q4Linear.concat(parts)
    mlp = getattr(block, "mlp", None)
    gate, up = getattr(mlp, "gate", None), getattr(mlp, "up", None)
    if isinstance(gate, Q4Linear) and isinstance(up, Q4Linear) and hasattr(mlp, "gate_up"):
        mlp.gate_up = Q4Linear.concat([gate, up])


__all__ = ["GROUP", "NotQ4", "Q4Linear", "fuse_projections", "quantize_linears", "recover_q4", "round_to_q4"]
