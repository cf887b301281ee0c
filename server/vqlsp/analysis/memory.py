"""A memory budget over all open documents' cached section states, with LRU eviction.

Keys are ``(uri, section id)``. What counts: for each section, the bytes of the tensors
its analysis state holds (``Analyzer.state_bytes()``): for the incremental engine, every
buffer its session allocated — per layer and row the residual input, q/k/v, the
attention accumulators, codes and slack, plus final states, ids and positions — at its
allocated capacity (buffers grow geometrically, so up to 2x the live rows), each storage
counted once, on whatever device it lives; for the dense fallback, the final hidden
states it keeps. A section's build in progress counts beside its live state (the
worker's ``build_step`` touches the key with both after every chunk). The server's own
copies of text and token ids are not counted here (a few bytes per character; they are
what a rebuild starts from): ``vqlsp.documentFootprint`` reports them as ``textBytes``.
Nor are the model's weights, shared by all documents.

When the total passes the budget, the least recently updated sections lose their state
until the total fits; the section being updated is never evicted by its own update, so
one section larger than the whole budget still works (and is the first to go when
another one is touched). A *pinned* key (the section a writer's cursor is in, one per
document) goes only once no unpinned key is left to evict: a long document's build
installs hundreds of sections after the one being typed in, and plain LRU order would
evict it, so the writer's next keystroke would pay a full pass. An evicted section keeps
its results and is rebuilt by a full pass on its next change. The table is used from the
inference worker thread only, like the states it measures.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class MemoryBudget:
    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._sizes: OrderedDict[Hashable, int] = OrderedDict()  # (uri, section) -> bytes, least recent first
        self.total_bytes = 0
        self.pinned: set[Hashable] = set()  # evicted last (``pin``)

    def touch(self, key: Hashable, nbytes: int) -> list[Hashable]:
        """Record ``key``'s state size as most recently used; return the keys to evict."""
        self.total_bytes += nbytes - self._sizes.get(key, 0)
        self._sizes[key] = nbytes
        self._sizes.move_to_end(key)
        return self.over_budget(keep=key)

    def over_budget(self, keep: Hashable | None = None) -> list[Hashable]:
        """The keys (never ``keep``) whose eviction brings the total under budget: the least
        recently used unpinned ones first, then pinned ones."""
        total = self.total_bytes
        out = []
        for pinned in (False, True):
            for key, size in self._sizes.items():
                if total <= self.budget_bytes:
                    return out
                if key == keep or (key in self.pinned) != pinned:
                    continue
                out.append(key)
                total -= size
        return out

    def pin(self, key: Hashable, pinned: bool = True) -> None:
        """Keep ``key`` until nothing else is left to evict (or no longer: ``pinned=False``)."""
        if pinned:
            self.pinned.add(key)
        else:
            self.pinned.discard(key)

    def forget(self, key: Hashable) -> None:
        self.total_bytes -= self._sizes.pop(key, 0)
        self.pinned.discard(key)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)
