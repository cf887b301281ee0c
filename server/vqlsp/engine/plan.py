"""Where an edit call moves, removes and inserts rows (torch-free bookkeeping).

One ``apply`` call gets several non-overlapping ``TokenEdit``s whose offsets all
refer to the old sequence (see ``vqlsp.engine.edits``). ``EditPlan`` turns them
into the facts every strategy needs: the new length, which old rows survive and
where they land (kept segments), which old rows leave, which new rows arrive, and
the first new index whose token differs from before.

*Doubled coordinates.* The incremental attention must know, for a surviving query
row ``u`` (new index), which removed keys used to precede it. A removed row of an
edit whose new tokens start at new index ``s`` sat just before new index ``s``, so
it gets the doubled coordinate ``2*s - 1``; a key at new index ``j`` has ``2*j``.
A key precedes query ``u`` exactly when its doubled coordinate is ``< 2*u``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .edits import TokenEdit


@dataclass(frozen=True)
class Segment:
    """Old rows ``[old_start, old_end)`` survive and now start at new index ``new_start``."""

    old_start: int
    old_end: int
    new_start: int

    @property
    def offset(self) -> int:
        return self.new_start - self.old_start

    def __len__(self) -> int:
        return self.old_end - self.old_start


@dataclass(frozen=True)
class EditPlan:
    old_len: int
    new_len: int
    edits: tuple[TokenEdit, ...]  # sorted, no-ops dropped
    new_starts: tuple[int, ...]  # new index of each edit's first new token
    kept: tuple[Segment, ...]  # non-empty kept segments, in order

    @classmethod
    def build(cls, old_len: int, edits: Sequence[TokenEdit]) -> EditPlan:
        ordered = sorted((e for e in edits if e.start != e.end or e.new_ids), key=lambda e: (e.start, e.end))
        kept, starts = [], []
        offset = previous_end = 0
        previous = None
        for e in ordered:
            if e.end > old_len:
                raise ValueError(f"edit [{e.start}, {e.end}) past the end ({old_len} tokens)")
            if e.start < previous_end or (previous is not None and (previous.start, previous.end) == (e.start, e.end)):
                raise ValueError("edits overlap")  # two insertions at one point have no order
            previous = e
            if e.start > previous_end:
                kept.append(Segment(previous_end, e.start, previous_end + offset))
            starts.append(e.start + offset)
            offset += e.delta
            previous_end = e.end
        if old_len > previous_end:
            kept.append(Segment(previous_end, old_len, previous_end + offset))
        return cls(old_len, old_len + offset, tuple(ordered), tuple(starts), tuple(kept))

    @property
    def empty(self) -> bool:
        return not self.edits

    @property
    def first_change(self) -> int:
        """First new index whose row is not an untouched survivor at the same index."""
        return self.new_starts[0] if self.edits else self.new_len

    def deleted(self) -> tuple[list[int], list[int]]:
        """Old indices of rows that leave, and their doubled coordinates in the new sequence."""
        rows, coords = [], []
        for e, s in zip(self.edits, self.new_starts):
            rows.extend(range(e.start, e.end))
            coords.extend([2 * s - 1] * (e.end - e.start))
        return rows, coords

    def inserted(self) -> tuple[list[int], list[int]]:
        """New indices of rows that arrive, and their token ids."""
        rows, ids = [], []
        for e, s in zip(self.edits, self.new_starts):
            rows.extend(range(s, s + len(e.new_ids)))
            ids.extend(e.new_ids)
        return rows, ids

    def moved(self) -> list[Segment]:
        """Kept segments whose index changes (they must be moved in row buffers)."""
        return [seg for seg in self.kept if seg.offset]
