"""What an analysis produces, as plain immutable values (no torch: ``lsp/`` reads them).

A document is analysed in sections (``sections.py``); the inference worker
answers each section's job with a ``SectionResult`` whose span offsets are
relative to the section's first character, so a result stays valid while
other sections change around it. The document's labels are ``HeadOutput``s,
one per document head (the model's own first, then the extra heads), pooled over
all sections; span results name the span head that produced them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HeadOutput:
    label: str
    probabilities: dict[str, float]
    head: str = ""  # the head's name (``DocumentHead.name``)


@dataclass(frozen=True)
class UpdateCost:
    """What one update computed, for the classification notification and hover."""

    full_pass: bool
    tokens: int
    rows_changed_per_layer: tuple[int, ...] = field(default_factory=tuple)
    ms: float = 0.0
    # per token of the section (engine updates): the layers at which its row was recomputed,
    # and the ACM learners run for it over those layers (ACM models only)
    row_work: tuple[int, ...] = ()
    row_learners: tuple[float, ...] = ()
    learners: float | None = None  # ACM learners run by the whole update (ACM models only)

    @property
    def rows_per_token(self) -> float:
        """Layers recomputed per token, over the whole update (``depth`` on a full pass)."""
        if self.full_pass:
            return float(len(self.rows_changed_per_layer))
        return sum(self.rows_changed_per_layer) / self.tokens if self.tokens else 0.0

    @property
    def learners_per_row(self) -> float | None:
        """ACM learners per recomputed (row, layer) (None without ACM or without recomputed rows)."""
        rows = sum(self.rows_changed_per_layer)
        return self.learners / rows if self.learners is not None and rows else None

    def span_compute(self, t0: int, t1: int, revision: int = -1) -> SpanCompute | None:
        """What tokens [t0, t1) cost in this update (None when the update did not count per token)."""
        if t1 <= t0:
            return None
        if self.row_work and len(self.row_work) == self.tokens:
            rows = sum(self.row_work[t0:t1])
            learners = sum(self.row_learners[t0:t1]) / rows if self.row_learners and rows else None
            return SpanCompute(rows / (t1 - t0), learners, revision)
        if self.full_pass:
            return SpanCompute(float(len(self.rows_changed_per_layer)), None, revision)
        return None

    @property
    def reused_fraction(self) -> float:
        """Share of the (row, layer) computations taken from the cache instead of recomputed."""
        total = self.tokens * len(self.rows_changed_per_layer)
        if self.full_pass or total == 0:
            return 0.0
        return max(0.0, 1.0 - sum(self.rows_changed_per_layer) / total)


# Span values are kept per sentence for every analysed section of an open document (a
# 10 MB one: ~125,000): slots, not a ``__dict__`` each, take 545 bytes a span, not 737.
@dataclass(frozen=True, slots=True)
class SpanCompute:
    """What a span's tokens cost on the update that produced its result (issue 15): a writer
    sees how much compute a sentence needed against the document's mean."""

    rows_per_token: float  # layers recomputed per token of the span (0: all reused; depth: a full pass)
    learners_per_row: float | None = None  # ACM learners per recomputed (row, layer) (ACM models only)
    revision: int = -1  # the document revision of that update


@dataclass(frozen=True, slots=True)
class SpanResult:
    start: int  # code-point offsets (relative to the section in a ``SectionResult``)
    end: int
    label: str
    probabilities: dict[str, float]
    head: str = ""  # the span head's name (``SpanHead.name``)
    extra: bool = False  # from an extra head (served beside the model's own: ``model/head_files.py``)
    compute: SpanCompute | None = None  # its tokens' cost on the update that produced it
    unit: str = ""  # what the span is ("sentence" | "paragraph"): its head's unit

    def shifted(self, delta: int) -> SpanResult:
        return self.moved(self.start + delta, self.end + delta)

    def moved(self, start: int, end: int) -> SpanResult:
        return dataclasses.replace(self, start=start, end=end)


@dataclass(frozen=True)
class SectionResult:
    """One section's analysis, for exactly the tokens and text of its job."""

    section: int  # the section's id (``sections.Section.id``)
    revision: int  # the document revision the job was cut at
    tokens: int
    # offsets relative to the section's first character; with several span heads, each span's
    # results in the order of the heads (the model's own first)
    spans: tuple[SpanResult, ...]
    cost: UpdateCost
    changed_tokens: int  # tokens the update's edits replaced or inserted (all of them on a full pass)
    ms: float  # wall time on the worker (edits, model, heads)
    engine: str  # "incremental" | "dense"
    drift: int = 0  # position ids' distance from exact (0: exact-position results)
    settled: bool = False  # the state was rebuilt on exact position ids (a settle)
    resynced: bool = False  # the cached state did not match the tokens and was rebuilt
    notes: tuple[str, ...] = ()
    # Every document head pooled over every section after this job (the model's own first),
    # when the caller asked for it (the last job of an update: no second trip through the job
    # queue to publish).
    labels: tuple[HeadOutput, ...] | None = None


@dataclass(frozen=True)
class BuildProgress:
    """A background build step's answer: done (with the section's result) or not yet."""

    section: int
    built_tokens: int
    result: SectionResult | None = None  # set on the last step
    abandoned: bool = False  # the build was dropped (its section changed meanwhile)
