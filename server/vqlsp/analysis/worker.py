"""The inference side of the server: the model, its heads, every section's analyzer, the memory budget.

All of it lives on one worker thread (the server's ``lsp/jobs.JobQueue``, never
pygls's pool, which reads stdin), so the model and cached states need no locks.
The event loop hands over read-only jobs, one section each, and gets back
immutable results (``results.py``); it never touches an analyzer.

Two kinds of job:

* ``update(job)``: bring one section up to date with its edits (the keystroke
  path). The job carries the section's whole token ids (bounded by the section
  size), so a section whose state is missing or out of step is rebuilt, never
  read wrong.
* ``build_step(job, chunk, give_way=...)``: build a section's state ``chunk``
  tokens at a time (a first pass over an opened document, or a settle: a fresh
  state on exact position ids) until it is done or another job waits; it asks
  after every layer, so background work never holds the worker for more than
  one layer of one chunk, and it runs a whole section in one job when nothing
  else is queued. Appending at the end of a causal model's state is the same
  computation as a first pass; the finished state replaces the section's live
  one.
* ``warm(job, chunk, give_way=...)``: the writer's cursor is in this section (a
  code action): built like ``build_step`` if its state was evicted,
  so the next keystroke there is an update, not a full pass.

Each document's *focus*, the section its last update or warm-up was for, is
pinned in the memory budget: a long document's build installs hundreds of
sections after it, and plain LRU order would evict the one being typed in.

The heads served are the model's own and any *extra* heads (fitted on this
model's features by ``vqlsp train-head``, loaded by ``model/head_files.py``):
each span head labels every span, each document head gives the document a label.
All read the same section states, so an extra head costs one small matmul.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from vqlsp.engine.edits import TokenEdit, compose_edits
from vqlsp.model.heads import DocumentHead, SpanHead
from vqlsp.text.segments import segment

from .analyzers import (
    Analyzer,
    EngineAnalyzer,
    Pooled,
    document_outputs,
    open_analyzer,
    span_outputs,
)
from .memory import MemoryBudget
from .results import BuildProgress, HeadOutput, SectionResult, SpanResult, UpdateCost
from .sections import SectionJob

log = logging.getLogger(__name__)


# State bytes evicted before a build step hands freed memory back (``_release_if_due``):
# about ten sections' states of 256 tokens on the default model.
RELEASE_AFTER_BYTES = 256 << 20


def token_spans(
    segments: Sequence[tuple[int, int]], starts: Sequence[int], ends: Sequence[int]
) -> list[tuple[int, int, int, int]]:
    """Character spans -> ``(char_start, char_end, token_start, token_end)`` for those that
    overlap at least one token."""
    out = []
    for cs, ce in segments:
        t0 = bisect_right(ends, cs)  # first token ending after cs
        t1 = bisect_left(starts, ce)  # tokens starting before ce
        if t1 > t0:
            out.append((cs, ce, t0, t1))
    return out


def _never() -> bool:
    return False


@dataclass
class _Build:
    """A section state being built in chunks, towards ``target``."""

    target: tuple[int, ...]
    policy: str
    analyzer: Analyzer  # holds the tokens built so far (once ``steps`` is exhausted)
    steps: Iterator[int] | None = None  # the chunk being appended, when a build gave way inside it
    ms: float = 0.0


@dataclass
class _Section:
    analyzer: Analyzer | None = None
    policy: str = "stable"
    tokens: int = 0  # the pooled features' weight
    features: Pooled | None = None  # what the document heads read (kept when evicted)
    build: _Build | None = None
    revision: int = -1  # the newest document revision an update brought this section to
    revision_before: int = -1  # (for the log when a state is found out of step)

    def held_bytes(self) -> int:
        """What its live state and its build in progress, if any, hold (what the budget counts)."""
        return sum(a.state_bytes() for a in (self.analyzer, self.build and self.build.analyzer) if a is not None)


@dataclass
class _Document:
    sections: dict[int, _Section] = field(default_factory=dict)
    # The sum of tokens x mean state over sections that have one, and their tokens: mean
    # pooling over the whole document in O(1) per update, whatever the sections' count.
    total: torch.Tensor | None = None  # (hidden_dim,) float64
    tokens: int = 0
    dead: set[int] = field(default_factory=set)  # forgotten sections: a late job leaves nothing behind

    def set_features(self, state: _Section, tokens: int, features: Pooled | None) -> None:
        if state.features is not None and self.total is not None:
            self.total -= state.features.mean.double() * state.tokens
            self.tokens -= state.tokens
        state.tokens, state.features = tokens, features
        if features is not None:
            added = features.mean.double() * tokens
            self.total = added if self.total is None else self.total + added
            self.tokens += tokens


class AnalysisWorker:
    """Owns the model, its heads and the per-section analyzers; every method runs on the worker thread."""

    def __init__(
        self, model, budget_bytes: int, *, dense: bool = False, extra_heads: Sequence = (),
        release_memory: Callable[[], object] | None = None, release_after_bytes: int = RELEASE_AFTER_BYTES,
    ):
        """``release_memory``: hands freed heap memory back to the OS (the server passes glibc's
        ``malloc_trim``); called from a background build step once evictions freed
        ``release_after_bytes`` since the last call."""
        self.model = model
        self.dense = dense
        # the model's own heads first: they give the classification's plain ``label`` fields
        own = [h for h in (model.document_head, model.span_head) if h is not None]
        heads = own + list(extra_heads)
        self.document_heads: list[DocumentHead] = [h for h in heads if h.kind == "document"]
        self.span_heads: list[SpanHead] = [h for h in heads if h.kind == "span"]
        self.documents: dict[str, _Document] = {}
        self.budget = MemoryBudget(budget_bytes)
        self.evictions = 0
        self.focus: dict[str, int] = {}  # uri -> the section id pinned in the budget
        self.release_memory, self.release_after_bytes = release_memory, release_after_bytes
        self.evicted_bytes = 0  # state bytes evicted since memory was last released
        self.releases = 0

    @property
    def engine(self) -> str:
        return "dense" if self.dense or not self.model.cfg.vq.enabled else "incremental"

    def _section(self, uri: str, section: int) -> _Section:
        doc = self.documents.setdefault(uri, _Document())
        if section in doc.dead:
            return _Section()  # computed for nothing, kept nowhere
        return doc.sections.setdefault(section, _Section())

    # -- the keystroke path ------------------------------------------------------------

    def update(self, job: SectionJob, *, label_last: int | None = None) -> SectionResult:
        """``label_last``: also pool the document label (``document``) once the section is up
        to date, with this section id as the document's last."""
        t0 = time.perf_counter()
        state = self._section(job.uri, job.section)
        state.build = None  # the section changed: a build towards its old tokens is moot
        state.revision_before, state.revision = state.revision, max(state.revision, job.revision)
        notes: list[str] = []
        resynced = False
        analyzer = state.analyzer if state.policy == job.position_policy else None
        if analyzer is None or job.batches is None:
            analyzer, cost = open_analyzer(self.model, job.ids, job.position_policy, dense=self.dense)
            changed = len(job.ids)
        else:
            before = analyzer.ids
            edits = _edits(analyzer.ids, job.batches)
            changed = sum(max(e.end - e.start, len(e.new_ids)) for e in edits) if edits is not None else 0
            cost = UpdateCost(False, len(job.ids), (0,) * self.model.cfg.depth)
            if edits:
                try:
                    cost = analyzer.apply(edits)
                except ValueError:  # edits that do not fit the state (only if our bookkeeping slipped)
                    edits = None
            if edits is None or analyzer.ids != job.ids:  # never read results of the wrong tokens
                log.warning("%s: section %d's cached state drifted from the text (%d tokens, revision %d; job: %d "
                            "tokens, revision %d, %d edit batches); rebuilding", job.uri, job.section, len(before),
                            state.revision_before, len(job.ids), job.revision, len(job.batches))
                notes.append("cached state did not match the text; rebuilt from the section's text")
                resynced = True
                analyzer, cost = open_analyzer(self.model, job.ids, job.position_policy, dense=self.dense)
                changed = len(job.ids)
        self._install(job, state, analyzer, notes, focus=True)
        result = self._result(job, analyzer, cost, changed, t0, resynced=resynced, notes=notes)
        if label_last is not None:
            result = dataclasses.replace(result, labels=self.document(job.uri, label_last))
        return result

    # -- background work, a chunk at a time --------------------------------------------

    def build_step(
        self, job: SectionJob, chunk: int, *, settle: bool = False, give_way: Callable[[], bool] = _never,
        focus: bool = False,
    ) -> BuildProgress:
        """Build the section's state ``chunk`` tokens at a time until it is done or ``give_way()``
        says another job is waiting. It is asked after every layer of a chunk, so a keystroke
        waits for one layer, not a chunk or a section; a build put off keeps its place (a chunk
        half through its layers) for the next call. On the last chunk the build replaces the
        section's state and the section's result is returned."""
        t0 = time.perf_counter()
        self._release_if_due()
        state = self._section(job.uri, job.section)
        if job.revision < state.revision:  # cut before an update of the section: moot
            if state.build is not None:
                state.build = None
                self._count_build(job, state)
            return BuildProgress(job.section, 0, abandoned=True)
        build = state.build
        if build is None or build.target != job.ids or build.policy != job.position_policy:
            empty, _ = open_analyzer(self.model, (), job.position_policy, dense=self.dense)
            build = state.build = _Build(job.ids, job.position_policy, empty)
        try:
            while (done := len(build.analyzer.ids)) < len(job.ids) or build.steps is not None:
                if build.steps is None:  # the next chunk, appended at the end
                    stop = min(done + max(chunk, 1), len(job.ids))
                    build.steps = build.analyzer.apply_in_steps([TokenEdit(done, done, job.ids[done:stop])])
                for _ in build.steps:
                    if give_way():
                        build.ms += (time.perf_counter() - t0) * 1e3
                        return BuildProgress(job.section, done)
                build.steps = None
                self._count_build(job, state)
        except BaseException:
            state.build = None  # a chunk that failed half way leaves its analyzer unusable
            raise
        build.ms += (time.perf_counter() - t0) * 1e3
        state.build = None
        analyzer = build.analyzer
        if analyzer.ids != job.ids:  # cannot happen unless the engine is wrong; say so
            raise RuntimeError(f"section {job.section}: a chunked build did not reproduce its tokens")
        self._install(job, state, analyzer, [], focus=focus)
        depth = self.model.cfg.depth
        cost = UpdateCost(True, len(job.ids), (len(job.ids),) * depth, build.ms)
        changed = 0 if settle else len(job.ids)  # a settle changes no token, it rebuilds the state
        result = self._result(job, analyzer, cost, changed, t0, settled=settle, ms=build.ms)
        return BuildProgress(job.section, len(job.ids), result)

    def warm(self, job: SectionJob, chunk: int, *, give_way: Callable[[], bool] = _never) -> BuildProgress:
        """Make ``job``'s section the document's focus, and give it a state if it has none
        (evicted, or never built): a build step, a settle's kind (the result is a fresh state's on
        the same tokens). Abandoned (nothing to do) when it has one."""
        state = self._section(job.uri, job.section)
        if state.analyzer is not None and state.policy == job.position_policy and state.build is None:
            self._pin(job.uri, job.section)
            return BuildProgress(job.section, len(job.ids), abandoned=True)
        return self.build_step(job, chunk, settle=True, give_way=give_way, focus=True)

    # -- the document ------------------------------------------------------------------

    def document(self, uri: str, last: int | None) -> tuple[HeadOutput, ...]:
        """Every document head pooled over every section analysed so far (``last``: the last
        one in document order, which last-token pooling reads). O(1) in the sections."""
        doc = self.documents.get(uri, _Document())
        state = doc.sections.get(last) if last is not None else None
        last_state = state.features.last if state is not None and state.features is not None else None
        mean = doc.total / doc.tokens if doc.tokens and doc.total is not None else None
        return document_outputs(self.document_heads, mean, last_state)

    def forget_sections(self, uri: str, sections: Sequence[int]) -> None:
        """Sections that no longer exist (merged, re-cut, deleted)."""
        doc = self.documents.get(uri)
        if doc is None:
            return
        for section in sections:
            doc.dead.add(section)
            if self.focus.get(uri) == section:
                del self.focus[uri]
            if (state := doc.sections.pop(section, None)) is not None:
                doc.set_features(state, 0, None)
            self.budget.forget((uri, section))

    def drop(self, uri: str) -> None:
        """Forget a document's state (closed, or to be rebuilt)."""
        doc = self.documents.pop(uri, None)
        self.focus.pop(uri, None)
        for section in doc.sections if doc else ():
            self.budget.forget((uri, section))

    # -- memory ------------------------------------------------------------------------

    def set_budget(self, budget_bytes: int) -> None:
        self.budget.budget_bytes = budget_bytes
        self._evict(self.budget.over_budget())

    def _evict(self, keys: Sequence[tuple[str, int]]) -> list[str]:
        notes = []
        for uri, section in keys:
            state = self.documents.get(uri, _Document()).sections.get(section)
            if state is not None:
                self.evicted_bytes += state.held_bytes()
                state.analyzer = None  # its pooled feature stays: the document label still counts it
                state.build = None
            self.budget.forget((uri, section))
            self.evictions += 1
            notes.append(f"memory budget: evicted the cached state of {uri} (section {section})")
        return notes

    def _release_if_due(self) -> None:
        """Hand memory back once evictions freed enough: an evicted state's buffers go back to
        the C allocator, which keeps them, and states built later are carved from them no
        better than partly. Measured building a 2 MB document's sections under a 512 MiB
        budget: RSS beyond the states grew with each eviction (to ~250 MiB after 120);
        releasing every 10 sections held it at ~115 MiB, ~5% of the build's time. Only from
        build steps: never on a keystroke's path."""
        if self.release_memory is not None and self.evicted_bytes >= self.release_after_bytes:
            self.evicted_bytes = 0
            self.releases += 1
            self.release_memory()

    def stats(self, uri: str) -> dict:
        doc = self.documents.get(uri, _Document())
        cached = [s for s in doc.sections.values() if s.analyzer is not None]
        return {
            "cached": bool(cached),
            "cachedSections": len(cached),
            "state_bytes": sum(s.analyzer.state_bytes() for s in cached),
            "total_state_bytes": self.budget.total_bytes,
            "budget_bytes": self.budget.budget_bytes,
            "evictions": self.evictions,
            "memory_releases": self.releases,
        }

    # -- helpers -----------------------------------------------------------------------

    def _span_heads_by_unit(self, unit: str) -> list[tuple[str, list[tuple[int, SpanHead]]]]:
        """The span heads (with their place in ``span_heads``) grouped by the unit they read: the
        model's own head reads ``unit`` (the ``diagnostics.unit`` option, else its own), an extra
        head the unit it was trained on."""
        groups: dict[str, list[tuple[int, SpanHead]]] = {}
        for order, head in enumerate(self.span_heads):
            groups.setdefault(unit if head is self.model.span_head else head.unit, []).append((order, head))
        return list(groups.items())

    def _count_build(self, job: SectionJob, state: _Section) -> None:
        """Count the section's state and its build in progress, if any, in the budget (a build
        of a first pass or a settle holds up to a whole section's state beside the live one:
        uncounted, a long document's first pass went past the budget by one build and what
        it left behind). Evictions it causes are logged: no result carries them."""
        size = state.held_bytes()
        doc = self.documents.get(job.uri)
        if doc is None or job.section in doc.dead:
            return
        if not size:
            self.budget.forget((job.uri, job.section))
            return
        for note in self._evict(self.budget.touch((job.uri, job.section), size)):
            log.info("%s", note)

    def _install(self, job: SectionJob, state: _Section, analyzer: Analyzer, notes: list[str], *,
                 focus: bool = False) -> None:
        """``focus``: the section is the writer's (an update, a warm-up): pinned in the budget."""
        doc = self.documents.setdefault(job.uri, _Document())
        if job.section in doc.dead:
            return
        state.analyzer, state.policy = analyzer, job.position_policy
        doc.set_features(state, len(job.ids), analyzer.features())
        if focus:
            self._pin(job.uri, job.section)
        notes.extend(self._evict(self.budget.touch((job.uri, job.section), analyzer.state_bytes())))

    def _pin(self, uri: str, section: int) -> None:
        """``section`` becomes ``uri``'s focus: pinned in the budget, the previous focus unpinned."""
        previous = self.focus.get(uri)
        if previous is not None and previous != section:
            self.budget.pin((uri, previous), False)
        self.focus[uri] = section
        self.budget.pin((uri, section))

    def _result(
        self, job: SectionJob, analyzer: Analyzer, cost: UpdateCost, changed: int, t0: float, *,
        resynced: bool = False, settled: bool = False, notes: Sequence[str] = (), ms: float | None = None,
    ) -> SectionResult:
        span_results = []
        hidden = None
        for unit, heads in self._span_heads_by_unit(job.unit):
            spans = token_spans(_segments(job, unit), job.starts, job.ends)
            if spans and hidden is None:
                hidden = analyzer.hidden()
            outputs = span_outputs([h for _, h in heads], hidden, [(a, b) for _, _, a, b in spans])
            span_results += [
                (cs, order, SpanResult(cs, ce, out.label, out.probabilities, out.head, extra=head is not self.model.span_head,
                                       compute=cost.span_compute(t0, t1, job.revision), unit=unit))
                for (cs, ce, t0, t1), outs in zip(spans, outputs) for (order, head), out in zip(heads, outs)
            ]
        span_results.sort(key=lambda r: r[:2])  # by place, then the model's own head before extra heads
        return SectionResult(
            section=job.section, revision=job.revision, tokens=len(job.ids), spans=tuple(r for _, _, r in span_results), cost=cost,
            changed_tokens=changed, ms=ms if ms is not None else (time.perf_counter() - t0) * 1e3,
            engine=analyzer.kind, drift=analyzer.drift, settled=settled, resynced=resynced, notes=tuple(notes),
        )


def _segments(job: SectionJob, unit: str) -> list[tuple[int, int]]:
    """The section's sentences or paragraphs (``unit``), read with the text before it as context
    (a span that starts there belongs to the section before)."""
    if not job.context:
        return [(s.start, s.end) for s in segment(job.text, unit, job.language)]
    skip = len(job.context)
    found = segment(job.context + job.text, unit, job.language)
    return [(s.start - skip, s.end - skip) for s in found if s.start >= skip]


def _edits(ids: tuple[int, ...], batches: Sequence[Sequence[TokenEdit]]) -> list[TokenEdit] | None:
    """The batches as one list of edits on ``ids`` (None if they do not apply to it)."""
    if not batches:
        return []
    try:
        return compose_edits(len(ids), batches)
    except ValueError:
        return None


__all__ = ["AnalysisWorker", "EngineAnalyzer", "SectionJob", "token_spans"]
