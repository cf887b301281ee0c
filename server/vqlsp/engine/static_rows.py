"""Row sets of fixed capacity, and the policy that picks that capacity for an edit.

The static layer loop (``static_loop.py``) keeps every per-layer row set on the device in
two forms: a mask over all slots (the set itself, of any size) and an index tensor of a
fixed size, the *bucket*, for the gathers and scatters of the few rows that are computed
(``take``). An index tensor lists the mask's slots in slot order and pads with the sink
slot (``SessionState.sink``), which no token owns: a padded entry computes a row that is
never read and writes only there. How many slots the mask holds is a device count, never
read inside the loop; when it exceeds the bucket, the loop computed only the first bucket's
worth and reports an overflow, read once after the loop (the edit is then redone with a
larger bucket, ``RowBuckets.grow``).

The bucket sizes are those of ``buckets.py`` (8, 16, 32, 64, 128, then multiples of 128),
so that shapes, compiled kernels and captured CUDA graphs come from a small set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .buckets import bucket_size


def take(mask: torch.Tensor, size: int, fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``size`` slots where ``mask`` (S,) holds, in slot order, padded with ``fill``;
    and how many slots it holds in all (0-d long, on the device). No host sync: the output
    shape is ``size`` whatever the mask holds."""
    index = torch.nonzero_static(mask, size=size, fill_value=fill).squeeze(1)
    return index, mask.sum()


def mask_of(slots: torch.Tensor, length: int, values: torch.Tensor | None = None) -> torch.Tensor:
    """(length,) bool: ``values`` (R,) bool (default: all True) scattered to ``slots`` (R,). A
    slot listed more than once (the sink, as padding) must carry the same value each time."""
    mask = torch.zeros(length, dtype=torch.bool, device=slots.device)
    return mask.index_put_((slots,), torch.ones((), dtype=torch.bool, device=slots.device) if values is None else values)


@dataclass(frozen=True)
class RowBuckets:
    """How many rows an edit's per-layer row sets may hold before the edit is redone.

    An edit changes a handful of rows at layer 0 and, as codes flip, more in later layers
    (on the default model at 4,096 tokens, 4 rows at the first layer and 82 at the last).
    The host knows the first layer's rows and the tail (rows after the first change, which
    bounds every set) before the loop, and the largest set of the previous edit after it.
    The first bucket covers ``headroom`` times the larger of those two; an overflow grows it
    ``growth`` times, or to ``headroom`` times the rows the overflowing layer counted (the
    masks hold whole sets, so a set is counted even where its rows were not all computed).
    A bucket never exceeds the tail's, which cannot overflow. The session keeps two: one for
    the rows that go through the matmuls and attention, one for the rows whose codes are
    searched (many more, and cheap).
    """

    # the smallest bucket. Replaying the per-edit peaks of 60 atomic edits (default model,
    # 1,024 tokens; median 31 rows, max 792) through this policy: 13 redos at 8, 6 at 64,
    # 3 at 128, and 64 ran the fewest rows in all (a redo runs the loop twice)
    minimum: int = 64
    headroom: float = 2.0  # first bucket: this many times the rows expected
    growth: int = 4  # an overflowed edit is redone with a bucket this many times larger

    def __post_init__(self) -> None:
        if self.minimum < 1 or self.headroom < 1 or self.growth < 2:
            raise ValueError("RowBuckets needs minimum >= 1, headroom >= 1 and growth >= 2")

    def first(self, first_rows: int, tail: int, last_peak: int = 0) -> int:
        """The bucket to try first: ``first_rows`` rows change at layer 0, ``tail`` rows lie at
        or after the first change, and the previous edit's largest set held ``last_peak``."""
        want = bucket_size(max(self.minimum, int(self.headroom * max(first_rows, last_peak))))
        return min(want, self.cap(tail))

    def grow(self, bucket: int, tail: int, needed: int = 0) -> int:
        """The bucket for the redo of an edit that overflowed ``bucket`` with ``needed`` rows."""
        return min(bucket_size(max(bucket * self.growth, int(self.headroom * needed))), self.cap(tail))

    def cap(self, tail: int) -> int:
        """A bucket that holds every row of the tail: no set can overflow it."""
        return bucket_size(max(tail, 1))


__all__ = ["RowBuckets", "mask_of", "take"]
