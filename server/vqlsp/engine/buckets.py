"""Row sets padded to a few fixed sizes, so that the per-layer shapes are static.

An edit changes a different number of rows in every layer. Padding each row set to the
next of a few sizes (8, 16, 32, 64, 128, then multiples of 128) gives every gathered
matmul, attention and code search one of a handful of shapes: what CUDA graphs (one
capture per size) and compiled kernels need, as serving engines pad batch sizes. The
padding repeats the last real row, whose results are computed again and dropped
(``real``), so a padded stage writes exactly what the unpadded one writes; on the CPU it
only costs the padded rows' work, and the engine leaves it off there by default.
"""

from __future__ import annotations

import torch

BUCKETS = (8, 16, 32, 64, 128)


def bucket_size(rows: int) -> int:
    """The padded size of a set of ``rows`` (0 stays 0)."""
    if rows <= 0:
        return 0
    for size in BUCKETS:
        if rows <= size:
            return size
    return -(-rows // BUCKETS[-1]) * BUCKETS[-1]


def padded(slots: torch.Tensor) -> torch.Tensor:
    """``slots`` (R,) padded to ``bucket_size(R)`` by repeating its last entry."""
    size = bucket_size(len(slots))
    if size == len(slots):
        return slots
    return torch.cat([slots, slots[-1:].expand(size - len(slots))])


__all__ = ["BUCKETS", "bucket_size", "padded"]
