"""Open documents: text, versions, tokens and sections, changed only on the event loop (one owner).

``DocumentStore`` applies ``didOpen`` / ``didChange`` / ``didClose`` to its
documents and cuts read-only ``SectionJob``s for the inference worker. One
``Document`` record per URI holds everything the server knows of it: text and
tokens, the sections (``analysis.sections.SectionMap``: what changed in each
since its last job, and each one's last result), what was last published, and
who waits for results. Every change bumps a document's ``revision`` (the
server's own counter), while ``version`` is whatever the client last sent.

Nothing here walks the whole text or token list per keystroke: a change costs
the text layer's splice, the line index's update and the section map's
bookkeeping (O(number of sections), a list of ints); a job copies one section.

A change the server cannot apply faithfully (reversed range, a change lost to a
malformed message) makes the document *desynced*: its text may no longer be the
client's, so nothing is analysed or published for it until a full-text change
or a reopen brings the whole text again. Out-of-range positions are clamped as
the LSP spec says (past the line end = line end; past the last line = document
end) and reported.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from vqlsp.analysis.results import HeadOutput, SpanResult, UpdateCost
from vqlsp.analysis.sections import DEFAULT_TARGET, SectionJob, SectionMap, cut_points
from vqlsp.text.document import InvalidChange, TokenizedDocument, changed_range
from vqlsp.text.ignores import ChunkIgnores, Ignores
from vqlsp.text.positions import InvalidRange, LineIndex, code_units
from vqlsp.text.tokenizer import TextTokenizer

from .collector import no_collections

LARGE_TEXT_CHARS = 1 << 16  # longer texts are tokenized and cut off the event loop
# longer texts also get their line index built off the event loop (``core.open_document``):
# measured 3 ms for 450 K characters, 15 ms for 2 M and 68 ms for 10 M (thread CPU, load ~6)
INDEX_OFF_LOOP_CHARS = 1 << 20
CONTEXT_CHARS = 4096  # markup context a section job carries from the section before it
MARKUP_LANGUAGES = frozenset({"markdown", "restructuredtext", "latex", "tex", "git-commit"})


def tokenize_and_cut(
    text: str, tokenizer: TextTokenizer, target: int, language: str
) -> tuple[TokenizedDocument, list[tuple[int, int]]]:
    """A text's tokens and its sections' ``(tokens, chars)``: O(length), safe in a thread (the
    tokenizer releases the GIL while it encodes)."""
    with no_collections():
        tokens = TokenizedDocument(text, tokenizer)
        return tokens, cut_document(text, tokens, target, language)


def cut_document(text: str, tokens: TokenizedDocument, target: int, language: str) -> list[tuple[int, int]]:
    """The sections' ``(tokens, chars)`` of a whole tokenized text (O(length))."""
    starts, ends = tokens.starts_and_ends()
    return cut_points(text, starts, ends, target, language)


class UnknownDocument(KeyError):
    """A request or change for a URI the client never opened (or already closed)."""

    def __str__(self) -> str:
        return f"document {self.args[0]} is not open"


@dataclass(frozen=True)
class Publication:
    """What the server last told the client about a document (classification and spans)."""

    version: int  # the version the classification describes (may be older than the document's)
    revision: int
    label: HeadOutput | None  # the first document head's (the model's own, if it has one)
    cost: UpdateCost  # the work of the update(s) it follows, over the whole document
    changed_tokens: int
    ms: float  # worker time of those updates
    engine: str
    drift: int  # max position drift over the sections (0: exact-position results)
    settled: bool
    sections: int
    sections_analysed: int
    analysed_tokens: int
    tokens: int
    text_hash: str | None  # sha256 of the text it describes, when that text is at hand and not huge
    heads: tuple[HeadOutput, ...] = ()  # every document head's output, ``label``'s first

    @property
    def complete(self) -> bool:
        return self.sections_analysed == self.sections


@dataclass
class Document:
    uri: str
    language_id: str
    version: int
    text: LineIndex  # the text and its lines (positions <-> offsets)
    tokens: TokenizedDocument | None  # None until a tokenizer is loaded
    revision: int = 0
    sections: SectionMap | None = None  # None until tokenized
    versions: dict[int, int] = field(default_factory=dict)  # revision -> the client's version
    forgotten: list[int] = field(default_factory=list)  # section ids gone since the worker last heard
    desynced: str | None = None  # why the text may differ from the client's
    binary: bool = False  # holds NUL characters: not prose, not analysed
    last: Publication | None = None
    published: int = 0  # publications so far (one revision can get several: a settle, a reload)
    settle_wanted: bool = False  # the writer paused: re-index drifted sections (``core.settle``)
    # Where the writer is: the code point after their last edit, or the start of their last
    # code action request (clients ask for code actions on every cursor move). Builds start
    # there (``core.next_build``).
    focus: int | None = None
    focused: int | None = None  # the section id the worker keeps first (``AnalysisWorker.focus``)
    warm_wanted: bool = False  # the focus moved to another section: give it a state (``core``)
    tokenizing: int = 0  # a long text being tokenized off the event loop: its ticket (0: none)
    untokenized: list[tuple[int, int, str]] = field(default_factory=list)  # changes meanwhile
    waiters: list[asyncio.Future] = field(default_factory=list)  # pulls / hovers awaiting results
    diagnostics: Any = None  # each section's diagnostics, as last pushed (``diagnostics.DiagnosticsCache``)
    diagnostics_timer: asyncio.TimerHandle | None = None  # a push waiting for its turn (``core``)
    diagnostics_next: float = 0.0  # loop time before which the next push waits
    ignores: tuple[int, Ignores] | None = None  # (revision, its ignore comments) (``diagnostics.py``)
    ignore_scan: ChunkIgnores | None = None  # the comments of each chunk of the text, as last found
    applying: bool = False  # a didChange is half applied: the text is between two versions (``changes``)

    def __post_init__(self) -> None:
        self.binary = "\x00" in self.text.text
        self.versions[self.revision] = self.version

    @property
    def n_tokens(self) -> int:
        return len(self.tokens) if self.tokens is not None else 0

    def version_at(self, revision: int) -> int:
        return self.versions.get(revision, self.version)

    def forget_versions_before(self, revision: int) -> None:
        """Versions of revisions no publication can describe any more."""
        for old in [r for r in self.versions if r < revision]:
            del self.versions[old]

    def current_spans(self, threshold: float = 0.0) -> list[SpanResult]:
        """Every section's span labels at or above ``threshold``, in the current text's
        code-point offsets: results computed before a later change are mapped through it,
        and dropped where it touched them (never a range on the wrong text)."""
        if self.sections is None:
            return []
        return [span.shifted(start) for section, start in zip(self.sections.sections, self.sections.char_starts)
                for span in section.current_spans(threshold)]

    def spans_around(self, offset: int) -> list[SpanResult]:
        """``current_spans`` of the sections that can hold code point ``offset`` (the one it
        falls in, and the one before it, whose last span may end there): what a hover reads,
        without mapping the whole document's spans."""
        if self.sections is None or not self.sections.sections:
            return []
        starts, k = self.sections.char_starts, self.sections.at_char(offset)
        return [span.shifted(starts[j]) for j in range(max(k - 1, 0), k + 1)
                for span in self.sections.sections[j].current_spans()]


@dataclass(frozen=True)
class ChangeReport:
    """What a ``didChange`` did, for the server to log."""

    document: Document
    warnings: tuple[str, ...] = ()
    desynced_now: bool = False
    resynced_now: bool = False
    retokenized: bool = False  # it crossed ``max_chars``: its tokens were dropped or rebuilt


class ChangeApplication:
    """One ``didChange`` being applied, content change by content change (``DocumentStore.
    begin_change``): a replace-all can carry thousands, and the server applies them a slice at
    a time so that the event loop is never held for all of them (``vqlsp.lsp.changes``)."""

    def __init__(self, store: DocumentStore, doc: Document, changes: list, warnings: list[str], *, was_desynced: bool):
        self.store, self.document, self.warnings, self.was_desynced = store, doc, warnings, was_desynced
        self._changes, self._next = changes, 0

    @property
    def done(self) -> bool:
        return self._next >= len(self._changes)

    @property
    def remaining(self) -> int:
        return len(self._changes) - self._next

    def step(self, count: int) -> None:
        """Apply the next ``count`` content changes (at least one, if any are left)."""
        stop = min(self._next + max(count, 1), len(self._changes))
        while self._next < stop:
            self.store._apply_one(self.document, self._changes[self._next], self.warnings)
            self._next += 1

    def finish(self) -> ChangeReport:
        """The rest of the changes, then the report (the document is at its new version)."""
        self.step(self.remaining)
        return self.store._finish_change(self)

    def abandon(self, reason: str) -> ChangeReport:
        """Stop here (applying a change failed): the document is desynced until the client
        sends its whole text."""
        self.store.desync(self.document, reason)
        self._next = len(self._changes)
        return self.store._finish_change(self)


class DocumentStore:
    def __init__(self, codec: PositionCodec, section_tokens: int = DEFAULT_TARGET, max_chars: int = 0):
        self.codec = codec
        self.section_tokens = section_tokens
        self.max_chars = max_chars  # longer texts are not tokenized (``too_long``); 0: no limit
        self.tokenizer: TextTokenizer | None = None
        self.documents: dict[str, Document] = {}
        self._section_ids = itertools.count(1)  # unique over all documents, so ids never meet on the worker
        self._tickets = itertools.count(1)  # tokenizations off the event loop (``Document.tokenizing``)

    def __contains__(self, uri: str) -> bool:
        return uri in self.documents

    def get(self, uri: str) -> Document:
        try:
            return self.documents[uri]
        except KeyError:
            raise UnknownDocument(uri) from None

    # -- lifecycle -----------------------------------------------------------------

    def open(self, uri: str, language_id: str, version: int, text: str, index: LineIndex | None = None) -> Document:
        """Open (or reopen: the client's text replaces whatever the server had). ``index``: the
        text's ``LineIndex``, if the caller built it (off the event loop, for a long text)."""
        old = self.documents.get(uri)
        revision = old.revision + 1 if old is not None else 0
        doc = Document(uri, language_id, version, index if index is not None else LineIndex(text), None, revision=revision)
        if old is not None and old.sections is not None:
            doc.forgotten = [s.id for s in old.sections.sections] + old.forgotten
        self._tokenize(doc)
        self.documents[uri] = doc
        return doc

    def close(self, uri: str) -> Document:
        doc = self.get(uri)
        del self.documents[uri]
        return doc

    def set_tokenizer(self, tokenizer: TextTokenizer | None) -> None:
        """A new tokenizer (model loaded or changed): re-tokenize and re-cut every document."""
        self.tokenizer = tokenizer
        for doc in self.documents.values():
            doc.revision += 1
            doc.versions[doc.revision] = doc.version
            self._tokenize(doc)

    def set_max_chars(self, max_chars: int) -> list[Document]:
        """A new ``maxFileLength``: the documents that crossed it (tokens dropped, or built
        again, under a new revision); the others keep their tokens, sections and results."""
        self.max_chars = max_chars
        crossed = [doc for doc in self.documents.values() if self._crossed(doc)]
        for doc in crossed:
            doc.revision += 1
            doc.versions[doc.revision] = doc.version
            self._tokenize(doc)
        return crossed

    def _crossed(self, doc: Document) -> bool:
        """Whether ``doc`` is tokenized (or being tokenized) but over ``max_chars``, or the other
        way round."""
        tokenized = doc.tokens is not None or bool(doc.tokenizing)
        return doc.desynced is None and self.tokenizer is not None and tokenized == self.too_long(doc)

    def retokenize(self, doc: Document) -> None:
        """Rebuild ``doc``'s tokens and sections from its text (a resync of the token state)."""
        self._tokenize(doc)

    def recut_all(self, section_tokens: int) -> None:
        """A new section size: every document is cut again (and analysed from scratch)."""
        self.section_tokens = section_tokens
        for doc in self.documents.values():
            if doc.tokens is not None:
                self._cut(doc)

    def too_long(self, doc: Document) -> bool:
        return bool(self.max_chars) and len(doc.text) > self.max_chars

    def _tokenize(self, doc: Document) -> None:
        """Tokens and sections for ``doc``'s text: at once for a text of ordinary size; for a
        long one, a ticket (``doc.tokenizing``) for the server to tokenize it off the event
        loop (``tokenize_and_cut`` in a thread, then ``attach``); none for a text over
        ``max_chars``."""
        if doc.sections is not None:
            doc.forgotten.extend(s.id for s in doc.sections.sections)
        doc.tokens, doc.sections, doc.tokenizing, doc.untokenized = None, None, 0, []
        if self.tokenizer is None or self.too_long(doc):
            return
        if len(doc.text) > LARGE_TEXT_CHARS:
            doc.tokenizing = next(self._tickets)
            return
        self._install(doc, *tokenize_and_cut(doc.text.text, self.tokenizer, self.section_tokens, doc.language_id))

    def attach(self, doc: Document, ticket: int, tokens: TokenizedDocument, lengths: list[tuple[int, int]]) -> bool:
        """The tokens and cut of ``doc``'s text as it was when ``ticket`` was issued; the changes
        since are replayed on them. False if a newer tokenization superseded this one."""
        if doc.tokenizing != ticket or doc.desynced is not None:
            return False
        self._install(doc, tokens, lengths)
        for start, end, new_text in doc.untokenized:
            if not self._apply_tokens(doc, start, end, new_text):
                break
        doc.tokenizing, doc.untokenized = 0, []
        return True

    def _install(self, doc: Document, tokens: TokenizedDocument, lengths: list[tuple[int, int]]) -> None:
        doc.tokens = tokens
        doc.sections = SectionMap(lengths, doc.revision, self.section_tokens, ids=self._section_ids)

    def _cut(self, doc: Document) -> None:
        if doc.tokens is None:
            return
        doc.forgotten.extend(s.id for s in doc.sections.sections)
        self._install(doc, doc.tokens, cut_document(doc.text.text, doc.tokens, self.section_tokens, doc.language_id))

    # -- changes ---------------------------------------------------------------------

    def change(
        self,
        uri: str,
        version: int,
        changes: Sequence[types.TextDocumentContentChangeEvent],
    ) -> ChangeReport:
        """Apply one ``didChange`` whole (``begin_change`` applies it a slice at a time)."""
        application = self.begin_change(uri, version, changes)
        application.step(len(changes))
        return application.finish()

    def begin_change(
        self, uri: str, version: int, changes: Sequence[types.TextDocumentContentChangeEvent]
    ) -> ChangeApplication:
        """Start applying one ``didChange``: the version and revision move at once, the content
        changes as ``step`` is called; until ``finish``, ``doc.applying`` says the text is
        between two of the client's versions."""
        doc = self.get(uri)
        warnings: list[str] = []
        if version <= doc.version:
            warnings.append(f"version {version} is not newer than {doc.version}; applied in arrival order")
        doc.version = version
        doc.revision += 1
        doc.versions[doc.revision] = version
        doc.applying = True
        return ChangeApplication(self, doc, list(changes), warnings, was_desynced=doc.desynced is not None)

    def _apply_one(self, doc: Document, change: types.TextDocumentContentChangeEvent, warnings: list[str]) -> None:
        if isinstance(change, types.TextDocumentContentChangeWholeDocument):
            if doc.desynced is not None:
                doc.text = LineIndex(change.text)
                doc.desynced = None
                self._tokenize(doc)
                doc.binary = "\x00" in change.text
            else:
                self._apply(doc, *changed_range(doc.text.text, change.text))
            return
        if doc.desynced is not None:
            return  # the text is unknown until a full-text change arrives
        try:
            start, end = self._offsets(doc, change.range, warnings)
        except InvalidRange as exc:
            self.desync(doc, f"cannot apply change: {exc}")
            return
        self._apply(doc, start, end, change.text)

    def _finish_change(self, application: ChangeApplication) -> ChangeReport:
        doc = application.document
        doc.applying = False
        crossed = self._crossed(doc)
        if crossed:
            self._tokenize(doc)
        return ChangeReport(
            doc,
            tuple(application.warnings),
            desynced_now=not application.was_desynced and doc.desynced is not None,
            resynced_now=application.was_desynced and doc.desynced is None,
            retokenized=crossed,
        )

    def desync(self, doc: Document, reason: str) -> None:
        doc.desynced = reason

    def _offsets(self, doc: Document, rng: types.Range, warnings: list[str]) -> tuple[int, int]:
        issues = []
        for pos in (rng.start, rng.end):
            if pos.line >= doc.text.line_count and not (pos.line == doc.text.line_count and pos.character == 0):
                issues.append(f"line {pos.line} is past the last line ({doc.text.line_count - 1})")
            elif pos.line < doc.text.line_count:
                width = code_units(doc.text.line_text(pos.line), self.codec)
                if pos.character > width:
                    issues.append(f"character {pos.character} is past the end of line {pos.line} ({width})")
        if issues:
            where = f"{rng.start.line}:{rng.start.character}-{rng.end.line}:{rng.end.character}"
            warnings.append(f"range {where}: {'; '.join(dict.fromkeys(issues))}; clamped")
        return doc.text.offsets_of(rng, self.codec)

    def _apply(self, doc: Document, start: int, end: int, new_text: str) -> None:
        if start == end and not new_text:
            return
        doc.focus = start + len(new_text)
        if doc.tokens is not None:
            if not self._apply_tokens(doc, start, end, new_text):
                return
        elif doc.tokenizing:
            doc.untokenized.append((start, end, new_text))  # replayed when the tokens arrive
        doc.text.apply_change(start, end, new_text)
        if "\x00" in new_text:
            doc.binary = True
        elif doc.binary:
            doc.binary = "\x00" in doc.text.text

    def _apply_tokens(self, doc: Document, start: int, end: int, new_text: str) -> bool:
        """The change on the tokens and sections (False: they fell out of step; desynced)."""
        assert doc.tokens is not None and doc.sections is not None
        try:
            edits = doc.tokens.apply_change(start, end, new_text)
        except InvalidChange as exc:  # offsets come from doc.text, so this means the two drifted
            self.desync(doc, f"token state out of step: {exc}")
            return False
        doc.forgotten.extend(doc.sections.apply(doc.revision, start, end, len(new_text), edits))
        for k in reversed(doc.sections.oversized()):
            self._recut(doc, k)
        return True

    def _recut(self, doc: Document, k: int) -> None:
        sections, tokens = doc.sections, doc.tokens
        assert sections is not None and tokens is not None
        t0, t1 = sections.token_starts[k], sections.token_starts[k + 1]
        c0, c1 = sections.char_starts[k], sections.char_starts[k + 1]
        spans = tokens.spans_slice(t0, t1)
        lengths = cut_points(tokens.text_between(c0, c1), [s - c0 for s, _ in spans], [e - c0 for _, e in spans],
                             sections.target, doc.language_id)
        doc.forgotten.extend(sections.recut(k, lengths, doc.revision))

    # -- jobs ------------------------------------------------------------------------

    def job(self, doc: Document, k: int, *, unit: str, position_policy: str, take: bool = True) -> SectionJob:
        """A read-only copy of section ``k`` for the worker (O(section)). ``take``: its
        pending edits go with it (an update); otherwise it is a build from its tokens."""
        sections, tokens = doc.sections, doc.tokens
        assert sections is not None and tokens is not None, "no tokenizer yet"
        t0, t1 = sections.token_starts[k], sections.token_starts[k + 1]
        c0, c1 = sections.char_starts[k], sections.char_starts[k + 1]
        spans = tokens.spans_slice(t0, t1)
        batches = sections.take(k) if take else None
        context = ""
        if k and doc.language_id in MARKUP_LANGUAGES:  # one section before, at most CONTEXT_CHARS
            context = tokens.text_between(max(sections.char_starts[k - 1], c0 - CONTEXT_CHARS), c0)
        return SectionJob(
            uri=doc.uri, section=sections.sections[k].id, revision=doc.revision, ids=tuple(tokens.ids_slice(t0, t1)),
            batches=None if batches is None else tuple(batches), text=tokens.text_between(c0, c1),
            starts=tuple(s - c0 for s, _ in spans), ends=tuple(e - c0 for _, e in spans), unit=unit,
            position_policy=position_policy, language=doc.language_id, context=context,
        )
