"""The unit of change between the text layer and the engine.

Kept free of torch so that ``vqlsp.text`` can produce edits without importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TokenEdit:
    """Replace tokens ``[start, end)`` of a sequence with ``new_ids``.

    Covers insertion (``start == end``), deletion (empty ``new_ids``) and
    replacement. Offsets refer to the sequence *before* the edit.
    """

    start: int
    end: int
    new_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"bad token range [{self.start}, {self.end})")
        object.__setattr__(self, "new_ids", tuple(int(i) for i in self.new_ids))

    @property
    def delta(self) -> int:
        """How much the edit changes the sequence length."""
        return len(self.new_ids) - (self.end - self.start)


def apply_edits(ids: Sequence[int], edits: Sequence[TokenEdit]) -> list[int]:
    """Apply ``edits`` (offsets into ``ids``, non-overlapping) and return the new sequence.

    The edits of one call all refer to the *old* sequence, as in one LSP
    ``didChange`` mapped to tokens; they are applied right to left.
    """
    out = list(ids)
    previous_start = len(out) + 1
    for edit in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        if edit.end > len(ids):
            raise ValueError(f"edit [{edit.start}, {edit.end}) past the end ({len(ids)} tokens)")
        if edit.end > previous_start:
            raise ValueError("edits overlap")
        out[edit.start : edit.end] = edit.new_ids
        previous_start = edit.start
    return out
