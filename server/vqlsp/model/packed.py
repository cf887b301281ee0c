"""Linear layers pre-packed for oneDNN, for inference on the CPU.

The incremental engine multiplies a handful of gathered rows by every weight of
a layer. For so few rows a BLAS GEMM spends most of its time re-packing the
weight into its blocked layout on every call; a weight packed once ahead of time
(``torch.ops.mkldnn._reorder_linear_weight``, the op PyTorch's own inductor uses
for frozen CPU models) streams at close to memory bandwidth: measured 1.5-2x
faster for 2-16 rows on SmolLM2's MLP, no slower for full batches. Results are
the same up to summation order (float rounding).

The ops are PyTorch-internal, so everything here falls back to ``nn.Linear``
when they are missing, and packed layers compute with their plain weight
whenever autograd needs a gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_MKLDNN = getattr(torch.ops, "mkldnn", None)
_PACK = getattr(_MKLDNN, "_reorder_linear_weight", None)
_LINEAR = getattr(_MKLDNN, "_linear_pointwise", None)


# oneDNN compiles a primitive per row count and keeps the last ONEDNN_PRIMITIVE_CACHE_CAPACITY
# of them (the server sets 64 to bound memory, ``lsp/server.py``). The engine's row counts
# change with every edit and layer: unpadded, 36 of the ~83 matmuls of an edit missed that
# cache and compiled afresh (SmolLM2, 1,024 tokens, 16 atomic edits; 0.8 once padded). Few
# rows stream the weight whatever their number, so up to this many rows are padded to a power
# of two (at least 8): 7 sizes per weight shape, compiled once.
PAD_MAX_ROWS = 512


def padded_rows(rows: int) -> int:
    """The row count a matmul of ``rows`` rows runs with."""
    if rows > PAD_MAX_ROWS or rows == 0:
        return rows
    return max(8, 1 << (rows - 1).bit_length())


def packing_available() -> bool:
    return _PACK is not None and _LINEAR is not None and torch.backends.mkldnn.is_available()


class PackedLinear(nn.Module):
    """``nn.Linear`` whose no-grad forward uses a oneDNN-packed copy of the weight."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias  # kept: state_dict, gradients, introspection
        self.packed = _PACK(linear.weight.detach().float().contiguous(), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)):
            return F.linear(x, self.weight, self.bias)
        bias = None if self.bias is None else self.bias.detach()
        rows = x.reshape(-1, self.in_features)
        m = rows.shape[0]
        size = padded_rows(m)
        if size != m:  # zero rows: their outputs are dropped
            rows = torch.cat([rows, rows.new_zeros(size - m, self.in_features)])
        y = _LINEAR(rows, self.packed, bias, "none", [], "")
        return y[:m].reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def pack_linears(module: nn.Module) -> nn.Module:
    """Replace every float32 CPU ``nn.Linear`` inside ``module`` by a ``PackedLinear`` (in place).
    A no-op where PyTorch lacks the oneDNN ops."""
    if not packing_available():
        return module
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.weight.device.type == "cpu" and child.weight.dtype == torch.float32:
                setattr(parent, name, PackedLinear(child))
    return module


__all__ = ["PackedLinear", "pack_linears", "packing_available", "padded_rows"]
