"""A memory budget over all open documents' cached engine states, with LRU eviction.

What counts: for each document, the bytes of the tensors its analysis state
holds (``Analyzer.state_bytes()``): for the incremental engine, every buffer
its session allocated — per layer and row the residual input, q/k/v, the
attention accumulators, codes and slack, plus final states, ids and positions
— at its allocated capacity (buffers grow geometrically, so up to 2x the live
rows), each storage counted once, on whatever device it lives; for the dense
fallback, the final hidden states it keeps. The server's own copies of text
and token ids are not counted (a few bytes per character; they are what a
rebuild starts from), nor are the model's weights, shared by all documents.

When the total passes the budget, the least recently updated documents lose
their state (``evict``) until the total fits; the document being updated is
never evicted by its own update, so one document larger than the whole budget
still works (and is the first to go when another one is touched). An evicted
document is rebuilt by a full pass on its next change. The table is used from
the inference worker thread only, like the states it measures.
"""

from __future__ import annotations

from collections import OrderedDict


class MemoryBudget:
    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._sizes: OrderedDict[str, int] = OrderedDict()  # uri -> bytes, least recent first

    def touch(self, uri: str, nbytes: int) -> list[str]:
        """Record ``uri``'s state size as most recently used; return the URIs to evict."""
        self._sizes[uri] = nbytes
        self._sizes.move_to_end(uri)
        return self.over_budget(keep=uri)

    def over_budget(self, keep: str | None = None) -> list[str]:
        """The least recently used URIs (never ``keep``) whose eviction brings the total under budget."""
        total = self.total_bytes
        out = []
        for uri, size in self._sizes.items():
            if total <= self.budget_bytes:
                break
            if uri == keep:
                continue
            out.append(uri)
            total -= size
        return out

    def forget(self, uri: str) -> None:
        self._sizes.pop(uri, None)

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes.values())

    def __contains__(self, uri: str) -> bool:
        return uri in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)
