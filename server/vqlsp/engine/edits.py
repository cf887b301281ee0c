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


def compose_edits(n: int, batches: Sequence[Sequence[TokenEdit]]) -> list[TokenEdit]:
    """One list of edits, in the coordinates of the original ``n`` tokens, that does what
    ``batches`` do applied one after the other (each batch in the coordinates left by the
    one before, as consecutive ``didChange`` content changes give them).

    Distant edits stay separate (two cursors far apart are two small edits, never one
    replacement of everything between them); edits that touch or overlap merge. Cost:
    O(n + total edit size), meant for bounded sequences (a section).
    """
    if len(batches) == 1:
        return sorted(batches[0], key=lambda e: (e.start, e.end))
    # Each token of the current sequence: its index in the original, or -1 if inserted.
    origin: list[int] = list(range(n))
    fresh: list[int] = [0] * n  # the id of inserted tokens (unused for original ones)
    for batch in batches:
        for edit in sorted(batch, key=lambda e: (e.start, e.end), reverse=True):
            if edit.end > len(origin):
                raise ValueError(f"edit [{edit.start}, {edit.end}) past the end ({len(origin)} tokens)")
            origin[edit.start : edit.end] = [-1] * len(edit.new_ids)
            fresh[edit.start : edit.end] = edit.new_ids
    edits: list[TokenEdit] = []
    expected = 0  # the next original index if nothing changed from here
    pending: list[int] = []
    for where, old in enumerate(origin):
        if old < 0:
            pending.append(fresh[where])
            continue
        if old != expected or pending:
            edits.append(TokenEdit(expected, old, tuple(pending)))
            pending = []
        expected = old + 1
    if expected != n or pending:
        edits.append(TokenEdit(expected, n, tuple(pending)))
    return edits
