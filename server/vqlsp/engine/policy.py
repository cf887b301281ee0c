"""What an edit recomputes, and what it updates in place: the engine's one tunable decision.

The session asks a ``RecomputePolicy`` three questions per layer and never decides them
itself (Eventful Transformers keeps its policies apart from its modules the same way):

* ``attend_all``: so many keys changed that updating every later row's accumulators
  would cost more than attending those rows afresh (``update_cost_ratio``: updating a
  row by one key costs about this many keys of the fused attention kernel; measured ~1
  with the C update kernel, and at 3 heavy edits were recomputed too early: p95 152 ms
  against 120 at 1.0, 1,024 tokens);
* ``cancel_ratio`` (handed to the update kernel): a row whose update would leave less than
  this fraction of its softmax mass is recomputed in full, since removing most of a sum
  turns float rounding into a large relative error;
* ``must_search``: a row's code can only flip once its slack (margin minus the distance its
  attention output moved since the last search) is used up; ``margin_guard`` absorbs the
  float rounding of the margins themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RecomputePolicy:
    cancel_ratio: float = 0.25
    margin_guard: float = 1e-6
    update_cost_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.cancel_ratio < 1.0:
            raise ValueError(f"cancel_ratio must lie in (0, 1), got {self.cancel_ratio}")
        if self.margin_guard < 0 or self.update_cost_ratio < 0:
            raise ValueError("margin_guard and update_cost_ratio must be >= 0")

    def attend_all(self, changed_keys, first, n):
        """Attend every row at index >= ``first`` afresh instead of updating it for
        ``changed_keys`` keys (those rows hold (first + n) / 2 keys on average). On ints a
        bool; on tensors a bool tensor, computed on the device (the static loop asks it
        without reading a count on the host)."""
        return (first < n) & (changed_keys * self.update_cost_ratio >= (first + n) / 2)

    def must_search(self, slack: torch.Tensor) -> torch.Tensor:
        """(H, rows) slack -> (rows,) bool: rows one of whose codes might have flipped."""
        return (slack <= self.margin_guard).any(0)


__all__ = ["RecomputePolicy"]
