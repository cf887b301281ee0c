"""The fewest ``TokenEdit``s that turn a window's old token ids into its new ones.

The engine pays per changed token, so tokens that came out the same after
re-tokenizing must not be reported: first the common prefix and suffix are
dropped (the usual case: a keystroke changes one or two tokens), then
``difflib`` finds unchanged tokens inside what is left (an edit that changes a
word at each end of a window but not the middle).
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher

from vqlsp.engine.edits import TokenEdit


def token_edits(old: Sequence[int], new: Sequence[int], offset: int = 0) -> list[TokenEdit]:
    """Edits turning ``old`` into ``new``, positions shifted by ``offset`` (where ``old`` sits)."""
    head = 0
    limit = min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    limit -= head
    while tail < limit and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    old_mid = old[head : len(old) - tail]
    new_mid = new[head : len(new) - tail]
    base = offset + head
    if not old_mid and not new_mid:
        return []
    if not old_mid or not new_mid or (len(old_mid) == 1 and len(new_mid) == 1):
        return [TokenEdit(base, base + len(old_mid), tuple(new_mid))]
    matcher = SequenceMatcher(None, old_mid, new_mid, autojunk=False)
    return [
        TokenEdit(base + i0, base + i1, tuple(new_mid[j0:j1]))
        for tag, i0, i1, j0, j1 in matcher.get_opcodes()
        if tag != "equal"
    ]
