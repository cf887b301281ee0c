"""The inference side of the server: the model, every document's analyzer, the memory budget.

All of it lives on one worker thread (a single-thread executor that is not
pygls's pool, which reads stdin), so model and cached states need no locks and
updates of different documents never compete for the CPU cores. The event
loop hands over read-only ``Snapshot``s and gets back immutable ``Analysis``
results; it never touches an analyzer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.text.segments import segment

from .analysis import Analyzer, HeadOutput, UpdateCost, open_analyzer
from .memory import MemoryBudget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What the worker needs to bring one document's analysis up to date (read-only)."""

    uri: str
    version: int  # the client's version of ``text``
    revision: int  # the server's change counter for this document (staleness checks)
    text: str
    ids: tuple[int, ...]  # the tokens the model reads: the document's first ``max_tokens``
    starts: tuple[int, ...]  # character span of each token in ``ids``
    ends: tuple[int, ...]
    total_tokens: int  # the whole document's token count
    # Token edits since the previous snapshot, one batch per content change, each
    # relative to the sequence after the batch before; None when unknown (resync).
    batches: tuple[tuple[TokenEdit, ...], ...] | None
    unit: str  # "sentence" | "paragraph"
    position_policy: str = "stable"
    settle: bool = False  # the writer paused: also re-index drifted position ids to exact ones


@dataclass(frozen=True)
class SpanResult:
    start: int  # code-point offsets into the snapshot's text
    end: int
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Analysis:
    """One update's results, for exactly ``text`` at ``version`` / ``revision``."""

    uri: str
    version: int
    revision: int
    text: str
    text_hash: str
    tokens: int  # tokens in the whole document
    analysed_tokens: int  # tokens the model read (less when over maxDocumentTokens)
    document: HeadOutput | None
    spans: tuple[SpanResult, ...]
    unit: str
    cost: UpdateCost
    changed_tokens: int  # tokens the update's edits replaced or inserted (all of them on a full pass)
    ms: float  # wall time of the whole update on the worker (edits, model, heads)
    engine: str  # "incremental" | "dense"
    resynced: bool = False  # the cached state did not match and was rebuilt
    drift: int = 0  # position ids' distance from exact after the update (0: exact-position results)
    settled: bool = False  # this update re-indexed drifted position ids (a settle)
    notes: tuple[str, ...] = field(default_factory=tuple)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def token_spans(
    segments: Sequence[tuple[int, int]], starts: Sequence[int], ends: Sequence[int]
) -> list[tuple[int, int, int, int]]:
    """Character spans -> ``(char_start, char_end, token_start, token_end)`` for those that
    overlap at least one token (segments past the analysed tokens are dropped)."""
    out = []
    for cs, ce in segments:
        t0 = bisect_right(ends, cs)  # first token ending after cs
        t1 = bisect_left(starts, ce)  # tokens starting before ce
        if t1 > t0:
            out.append((cs, ce, t0, t1))
    return out


def edits_between(
    old: tuple[int, ...], new: tuple[int, ...], batches: Sequence[Sequence[TokenEdit]] | None
) -> list[TokenEdit]:
    """Token edits that turn ``old`` into ``new``.

    The text layer's edits are used when they are exactly one batch that applies
    to ``old`` and gives ``new``; otherwise (several coalesced changes, a
    truncated document, a resync) one replacement of the differing middle.
    """
    if batches is not None and len(batches) == 1:
        try:
            if tuple(apply_edits(old, batches[0])) == new:
                return list(batches[0])
        except ValueError:
            pass
    if old == new:
        return []
    n = min(len(old), len(new))
    prefix = 0
    while prefix < n and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < n - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return [TokenEdit(prefix, len(old) - suffix, new[prefix : len(new) - suffix])]


class AnalysisWorker:
    """Owns the model and the per-document analyzers; every method runs on the worker thread."""

    def __init__(self, model, budget_bytes: int, *, dense: bool = False):
        self.model = model
        self.dense = dense
        self.analyzers: dict[str, Analyzer] = {}
        self.policies: dict[str, str] = {}
        self.budget = MemoryBudget(budget_bytes)
        self.evictions = 0

    def update(self, snap: Snapshot) -> Analysis:
        t0 = time.perf_counter()
        notes: list[str] = []
        analyzer = self.analyzers.get(snap.uri)
        resynced = settled = False
        if analyzer is not None and self.policies.get(snap.uri) != snap.position_policy:
            analyzer = None
        if analyzer is None:
            analyzer, cost = open_analyzer(self.model, snap.ids, snap.position_policy, dense=self.dense)
            changed = len(snap.ids)
        else:
            edits = edits_between(analyzer.ids, snap.ids, snap.batches)
            changed = sum(max(e.end - e.start, len(e.new_ids)) for e in edits)
            cost = analyzer.apply(edits)
            if analyzer.ids != snap.ids:  # never read results of the wrong tokens
                log.warning("%s: cached state drifted from the text; rebuilding", snap.uri)
                notes.append("cached state did not match the text; rebuilt from the full text")
                resynced = True
                analyzer, cost = open_analyzer(self.model, snap.ids, snap.position_policy, dense=self.dense)
                changed = len(snap.ids)
            elif snap.settle and not edits and analyzer.drift:
                cost, settled = analyzer.reindex(), True
        self.analyzers[snap.uri] = analyzer
        self.policies[snap.uri] = snap.position_policy

        spans = token_spans([(s.start, s.end) for s in segment(snap.text, snap.unit)], snap.starts, snap.ends)
        document, heads = analyzer.heads([(t0_, t1_) for _, _, t0_, t1_ in spans])
        span_results = tuple(
            SpanResult(cs, ce, out.label, out.probabilities) for (cs, ce, _, _), out in zip(spans, heads)
        )
        for uri in self.budget.touch(snap.uri, analyzer.state_bytes()):
            self.drop(uri)
            self.evictions += 1
            notes.append(f"memory budget: evicted the cached state of {uri}")
        return Analysis(
            uri=snap.uri, version=snap.version, revision=snap.revision, text=snap.text,
            text_hash=text_hash(snap.text), tokens=snap.total_tokens, analysed_tokens=len(snap.ids),
            document=document, spans=span_results, unit=snap.unit, cost=cost, changed_tokens=changed,
            ms=(time.perf_counter() - t0) * 1e3, engine=analyzer.kind, resynced=resynced, drift=analyzer.drift,
            settled=settled, notes=tuple(notes),
        )

    def drop(self, uri: str) -> None:
        """Forget a document's state (closed, evicted, or to be rebuilt)."""
        self.analyzers.pop(uri, None)
        self.policies.pop(uri, None)
        self.budget.forget(uri)

    def drop_all(self) -> None:
        for uri in list(self.analyzers):
            self.drop(uri)

    def set_budget(self, budget_bytes: int) -> list[str]:
        self.budget.budget_bytes = budget_bytes
        evicted = self.budget.over_budget()
        for uri in evicted:
            self.drop(uri)
        self.evictions += len(evicted)
        return evicted

    def stats(self, uri: str) -> dict:
        analyzer = self.analyzers.get(uri)
        return {
            "cached": analyzer is not None,
            "state_bytes": analyzer.state_bytes() if analyzer is not None else 0,
            "total_state_bytes": self.budget.total_bytes,
            "budget_bytes": self.budget.budget_bytes,
            "evictions": self.evictions,
        }
