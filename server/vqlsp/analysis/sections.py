"""A document cut into sections of bounded size, kept in step with its edits (no torch).

The server analyses a long document as a row of *sections*: runs of whole
paragraphs of at most ``target`` tokens, each its own incremental session on the
worker. A keystroke then costs what its section's update costs, whatever the
document's length, and state can be kept for the sections being edited only.

``SectionMap`` owns where sections start (in tokens and in characters; the two
always name the same place, the first character of the section's first token)
and, per section, what changed since its last job: the token edit batches to
send, and the character changes a result computed before them must be mapped
through (``map_span``) so that no diagnostic points at the wrong text. An edit
inside one section changes only that section; an edit across a boundary merges
the sections it touches into one new section (its state is rebuilt); a section
that grows past twice the target is cut again (``oversized`` tells the caller,
who has the text). Sections are never merged for being small: a small section
costs little.

Cutting (``cut_points``) prefers paragraph starts, then line starts outside markup
(the first line of a code block, say), then sentence starts, then any token
boundary between two characters, so every section is at most ``target`` tokens
when cut, and a cut falls inside a code block or an environment only when one
is longer than a section.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from operator import attrgetter

from vqlsp.engine.edits import TokenEdit
from vqlsp.text.markup import scan
from vqlsp.text.segments import paragraph_starts, segment

from .results import SectionResult, SpanResult

DEFAULT_TARGET = 512  # tokens per section when cut (sectionTokens)


@dataclass(frozen=True)
class CharChange:
    revision: int
    start: int  # relative to the section's first character, before the change
    end: int
    length: int  # of the new text


@dataclass
class Section:
    id: int
    tokens: int
    chars: int
    created: int  # the revision that made this section
    # Token edits since the last job was cut, one batch per content change, relative to the
    # section's tokens after the batch before; None: unknown, the next job rebuilds.
    batches: list[tuple[TokenEdit, ...]] | None = None
    changes: list[CharChange] = field(default_factory=list)  # since ``result``'s revision
    pending: int | None = None  # revision of the first change not yet cut into a job
    urgent: bool = False  # pending because the writer edited it (vs a first pass): foreground
    edits: int = 0  # changes applied to it so far (a background build checks it did not move)
    result: SectionResult | None = None

    @property
    def valid_until(self) -> int | None:
        """The first revision ``result`` no longer holds for (None: holds now)."""
        if self.result is None:
            return None
        later = [c.revision for c in self.changes if c.revision > self.result.revision]
        return min(later) if later else None

    def record(self, result: SectionResult) -> None:
        """A job's result arrived: keep it, and only the changes made after its cut."""
        self.result = result
        self.changes = [c for c in self.changes if c.revision > result.revision]

    def current_spans(self, threshold: float = 0.0) -> list[SpanResult]:
        """``result``'s spans at or above ``threshold`` on the current text (relative to this
        section): mapped through later changes, those a change touched left out."""
        if self.result is None:
            return []
        spans = [s for s in self.result.spans if s.probabilities[s.label] >= threshold]
        if not self.changes:
            return spans
        return [moved for s in spans if (moved := self.map_span(s)) is not None]

    def map_span(self, span: SpanResult) -> SpanResult | None:
        """``span`` (relative to this section, of ``result``'s text) on the current text; None
        if a later change touched it."""
        start, end = span.start, span.end
        for change in self.changes:
            if change.revision <= self.result.revision:  # type: ignore[union-attr]
                continue
            if change.end < start or (change.end == start and change.start < change.end):
                shift = change.length - (change.end - change.start)
                start, end = start + shift, end + shift
            elif change.start >= end:
                continue
            else:
                return None
        return span.moved(start, end)


class SectionMap:
    """The sections of one document, in order; changed only on the event loop."""

    def __init__(
        self, lengths: Sequence[tuple[int, int]], revision: int, target: int = DEFAULT_TARGET,
        *, ids: Iterator[int] | None = None,
    ):
        self.target = target
        # Where section ids come from: share one counter between maps whose ids must never
        # meet (the documents of one server, a document and its reopened self).
        self._ids = ids if ids is not None else itertools.count(1)
        self.sections: list[Section] = [self._new(t, c, revision) for t, c in lengths if t]
        self._index()

    def _new(self, tokens: int, chars: int, revision: int, *, urgent: bool = False) -> Section:
        return Section(next(self._ids), tokens, chars, revision, batches=None, pending=revision, urgent=urgent)

    def _index(self) -> None:  # (C-speed: it runs on every change)
        self.token_starts = list(accumulate(map(attrgetter("tokens"), self.sections), initial=0))
        self.char_starts = list(accumulate(map(attrgetter("chars"), self.sections), initial=0))

    def __len__(self) -> int:
        return len(self.sections)

    def bounds(self) -> list[tuple[int, int]]:
        """Each section's ``[token_start, token_end)``."""
        return list(zip(self.token_starts, self.token_starts[1:]))

    def _at(self, starts: list[int], where: int) -> int:
        """The section holding ``where`` (a position at the very end: the last section)."""
        return min(max(bisect_right(starts, where) - 1, 0), len(self.sections) - 1)

    def at_char(self, offset: int) -> int:
        """The index of the section holding code point ``offset`` (the last one past the end)."""
        return self._at(self.char_starts, offset)

    # -- changes -----------------------------------------------------------------------

    def apply(
        self, revision: int, start: int, end: int, length: int, edits: Sequence[TokenEdit]
    ) -> list[int]:
        """Characters ``[start, end)`` became ``length`` new ones and the tokens changed by
        ``edits`` (one content change). Returns the ids of the sections that ceased to exist."""
        delta_chars = length - (end - start)
        delta_tokens = sum(e.delta for e in edits)
        if not self.sections:
            if self.token_starts[-1] + delta_tokens > 0:
                self.sections = [self._new(delta_tokens, length, revision, urgent=True)]
                self._index()
            return []
        touched = {self._at(self.char_starts, start), self._at(self.char_starts, max(end - 1, start))}
        for e in edits:
            touched.add(self._at(self.token_starts, e.start))
            touched.add(self._at(self.token_starts, max(e.end - 1, e.start)))
        k0, k1 = min(touched), max(touched)
        gone: list[int] = []
        if k0 == k1:
            section, t0, c0 = self.sections[k0], self.token_starts[k0], self.char_starts[k0]
            section.tokens += delta_tokens
            section.chars += delta_chars
            if section.batches is not None and edits:
                section.batches.append(tuple(TokenEdit(e.start - t0, e.end - t0, e.new_ids) for e in edits))
            section.changes.append(CharChange(revision, start - c0, end - c0, length))
            section.edits += 1
            if section.pending is None:
                section.pending = revision
            section.urgent = True
        else:  # across a boundary: one new section in place of those touched
            merged = self.sections[k0 : k1 + 1]
            gone = [s.id for s in merged]
            tokens = sum(s.tokens for s in merged) + delta_tokens
            chars = sum(s.chars for s in merged) + delta_chars
            self.sections[k0 : k1 + 1] = [self._new(tokens, chars, revision, urgent=True)]
        if self.sections[k0].tokens <= 0:  # emptied: gone (its characters, if any, join a neighbour)
            empty = self.sections.pop(k0)
            gone.append(empty.id)
            if empty.chars and self.sections:
                neighbour = self.sections[min(k0, len(self.sections) - 1)]
                neighbour.chars += empty.chars
                neighbour.batches = None
        self._index()
        return gone

    def oversized(self) -> list[int]:
        """Indices of sections past twice the target: the caller cuts them again (``recut``)."""
        return [k for k, s in enumerate(self.sections) if s.tokens > 2 * self.target]

    def recut(self, k: int, lengths: Sequence[tuple[int, int]], revision: int) -> list[int]:
        """Replace section ``k`` by new sections of the given ``(tokens, chars)``; returns the id
        that ceased to exist."""
        old = self.sections[k]
        assert sum(t for t, _ in lengths) == old.tokens and sum(c for _, c in lengths) == old.chars
        urgent = old.urgent or old.result is not None
        self.sections[k : k + 1] = [self._new(t, c, revision, urgent=urgent) for t, c in lengths if t]
        self._index()
        return [old.id]

    def reset(self, revision: int) -> None:
        """Forget every section's state and results (a new model or new settings): rebuild all."""
        for s in self.sections:
            s.batches, s.result, s.changes, s.pending, s.urgent = None, None, [], revision, False

    # -- what to send ------------------------------------------------------------------

    def take(self, k: int) -> list[tuple[TokenEdit, ...]] | None:
        """Section ``k``'s pending edit batches, now cut into a job (None: rebuild)."""
        section = self.sections[k]
        batches = section.batches
        section.batches, section.pending, section.urgent = [], None, False
        return batches

    def put_back(self, k: int, revision: int) -> None:
        """A job of section ``k`` failed: its next job (the next update) rebuilds it."""
        section = self.sections[k]
        section.batches, section.urgent = None, True
        if section.pending is None:
            section.pending = revision

    def published_revision(self, current: int) -> int:
        """The latest revision every section's result holds for (sections without a result do
        not count): what a classification pooled over them describes."""
        limits = [until for s in self.sections if s.changes and (until := s.valid_until) is not None]
        return min(limits) - 1 if limits else current

    def find(self, section_id: int) -> int | None:
        for k, s in enumerate(self.sections):
            if s.id == section_id:
                return k
        return None


def cut_points(
    text: str, starts: Sequence[int], ends: Sequence[int], target: int, language: str = "plaintext"
) -> list[tuple[int, int]]:
    """Cut a stretch of text with its tokens (character spans relative to ``text``) into
    sections of at most ``target`` tokens; returns each section's ``(tokens, chars)``.
    Cuts fall where prose starts (``language``: never inside a code block, front matter, a
    LaTeX environment or display math, unless no other cut is in reach)."""
    n = len(starts)
    if n <= target:
        return [(n, len(text))] if n else []

    def token_at(chars: Sequence[int]) -> list[int]:
        out = []
        for c in chars:
            t = bisect_right(starts, c - 1)  # first token starting at or after c
            if 0 < t < n and starts[t] >= ends[t - 1]:
                out.append(t)
        return out

    def line_starts() -> list[int]:  # outside code blocks, front matter, environments
        markup = scan(text, language)
        return [m.end() for m in re.finditer(r"\n", text) if not markup.inside(m.end())]

    # Where to cut, best first: a paragraph of prose starts; a line starts (before a code
    # block, say); a sentence starts. Tiers are computed only when the one before fails.
    makers = [lambda: paragraph_starts(text, language), line_starts,
              lambda: [s.start for s in segment(text, "sentence", language)]]
    tiers: list[list[int] | None] = [None] * len(makers)
    cuts: list[int] = []
    pos = 0
    while n - pos > target:
        cut = None
        for i, make in enumerate(makers):
            if tiers[i] is None:
                tiers[i] = token_at(make())
            if (cut := _last_in(tiers[i], pos, pos + target)) is not None:
                break
        if cut is None:  # no sentence start in reach: any boundary between two characters
            cut = next((t for t in range(pos + target, pos, -1) if starts[t] >= ends[t - 1]), pos + target)
        cuts.append(cut)
        pos = cut
    bounds = [0, *cuts, n]
    chars = [0, *(starts[t] for t in cuts), len(text)]
    return [(bounds[i + 1] - bounds[i], chars[i + 1] - chars[i]) for i in range(len(cuts) + 1)]


def nearest(indices: Sequence[int], k: int) -> int:
    """The one of ``indices`` (sorted, not empty) nearest ``k``, the later one at equal distance
    (a writer reads on down)."""
    i = bisect_left(indices, k)
    if i == len(indices):
        return indices[-1]
    if i == 0 or indices[i] - k <= k - indices[i - 1]:
        return indices[i]
    return indices[i - 1]


def _last_in(candidates: list[int] | None, low: int, high: int) -> int | None:
    """The largest candidate in ``(low, high]``."""
    if not candidates:
        return None
    i = bisect_right(candidates, high) - 1
    return candidates[i] if i >= 0 and candidates[i] > low else None


@dataclass(frozen=True)
class SectionJob:
    """What the worker needs to bring one section up to date (read-only)."""

    uri: str
    section: int  # the section's id
    revision: int  # the document's revision when the job was cut
    ids: tuple[int, ...]  # the section's tokens
    # Token edits since the section's previous job, one batch per content change, each
    # relative to the tokens after the batch before; None when unknown (rebuild).
    batches: tuple[tuple[TokenEdit, ...], ...] | None
    text: str  # the section's text
    starts: tuple[int, ...]  # each token's character span, relative to the section's start
    ends: tuple[int, ...]
    unit: str  # "sentence" | "paragraph"
    position_policy: str = "stable"
    language: str = "plaintext"  # the document's languageId: its markup is not prose (``text.markup``)
    # Text just before the section (marked-up documents only): where a code block, a table
    # or a commit's diff began before the cut, so the section's own text is read as it is.
    context: str = ""
