"""What the model sees of a document longer than its context: the first ``max_tokens`` tokens.

Policy: **head window**. The document keeps all its tokens; the engine is given
tokens ``[0, max_tokens)`` and the edits that keep that prefix current. Tokens
past the limit are not classified (the server says so to the user); nothing
ever fails because a document is long.

Why the head and not the tail or a sliding window: for an incremental engine a
window must not move when the text changes. With the last N tokens, every
insertion pushes one token out at the front, so every remaining token moves to
a new position and the whole window is recomputed: one keystroke, full cost.
With the first N tokens, an edit inside the window costs what it costs anyway,
plus at most a short deletion or insertion at the window's end (tokens pushed
out of, or pulled into, view); an edit past the window costs nothing.

If the model prepends a BOS token, give ``max_tokens = context - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vqlsp.engine.edits import TokenEdit


@dataclass(frozen=True)
class HeadWindow:
    """The first ``max_tokens`` tokens of a document."""

    max_tokens: int

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")

    def visible(self, ids: Sequence[int]) -> list[int]:
        """The ids the model sees of a document with ids ``ids``."""
        return list(ids[: self.max_tokens])

    def clip(
        self,
        edits: Sequence[TokenEdit],
        old_length: int,
        read_new: Callable[[int, int], Sequence[int]],
    ) -> list[TokenEdit]:
        """Turn edits of a whole document into edits of what the model sees.

        ``edits`` change a document of ``old_length`` tokens (offsets into the
        old ids, as ``TokenizedDocument.apply_change`` returns them);
        ``read_new(start, stop)`` gives ids ``[start, stop)`` of the document
        after them (``TokenizedDocument.ids_slice``), and is read only for the
        tokens that come into view. The result turns ``visible(old)`` into
        ``visible(new)``.
        """
        limit = self.max_tokens
        if old_length <= limit:
            # Everything was visible, so applying the edits gives a prefix of
            # the new ids; only what grows past the limit must go.
            clipped = sorted(edits, key=lambda e: e.start)
            old_visible = old_length
        else:
            # Parts of edits past the limit are invisible; an edit across it is
            # cut there, keeping all of its new tokens (trimmed below).
            clipped = [
                TokenEdit(e.start, min(e.end, limit), e.new_ids)
                for e in sorted(edits, key=lambda e: e.start)
                if e.start < limit
            ]
            old_visible = limit
        new_length = old_length + sum(e.delta for e in edits)
        # Applying ``clipped`` to the old visible ids gives new ids [0, produced).
        produced = old_visible + sum(e.delta for e in clipped)
        wanted = min(limit, new_length)
        if produced > wanted:
            return _truncate(clipped, old_visible, wanted)
        if produced < wanted:
            return _extend(clipped, old_visible, tuple(read_new(produced, wanted)))
        return clipped


def _truncate(edits: list[TokenEdit], old_visible: int, keep: int) -> list[TokenEdit]:
    """``edits`` changed so that their result stops after ``keep`` tokens."""
    out: list[TokenEdit] = []
    old = produced = 0  # position in the old ids, and in the result
    for edit in edits:
        unchanged = edit.start - old
        if produced + unchanged >= keep:
            break
        produced += unchanged
        if produced + len(edit.new_ids) >= keep:
            out.append(TokenEdit(edit.start, old_visible, edit.new_ids[: keep - produced]))
            return out
        out.append(edit)
        produced += len(edit.new_ids)
        old = edit.end
    cut = old + (keep - produced)
    if cut < old_visible:
        out.append(TokenEdit(cut, old_visible, ()))
    return out


def _extend(edits: list[TokenEdit], old_visible: int, more: tuple[int, ...]) -> list[TokenEdit]:
    """``edits`` followed by ``more`` new tokens at the end of the visible ids."""
    if edits and edits[-1].end == old_visible:
        last = edits[-1]
        return [*edits[:-1], TokenEdit(last.start, last.end, last.new_ids + more)]
    return [*edits, TokenEdit(old_visible, old_visible, more)]
