"""Open documents: text, versions and tokens, changed only on the event loop (one owner).

``DocumentStore`` applies ``didOpen`` / ``didChange`` / ``didClose`` to its
documents and cuts read-only ``Snapshot``s for the inference worker. Every
change bumps a document's ``revision`` (the server's own counter: a result is
published only if its revision is still the document's), while ``version`` is
whatever the client last sent (stamped on what is published).

A change the server cannot apply faithfully (reversed range, a change lost to a
malformed message) makes the document *desynced*: its text may no longer be the
client's, so nothing is analysed or published for it until a full-text change
or a reopen brings the whole text again. Out-of-range positions are clamped as
the LSP spec says (past the line end = line end; past the last line = document
end) and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from vqlsp.engine.edits import TokenEdit
from vqlsp.text.document import InvalidChange, TokenizedDocument
from vqlsp.text.positions import InvalidRange, LineIndex
from vqlsp.text.tokenizer import TextTokenizer

from .worker import Snapshot


class UnknownDocument(KeyError):
    """A request or change for a URI the client never opened (or already closed)."""

    def __str__(self) -> str:
        return f"document {self.args[0]} is not open"


@dataclass
class Document:
    uri: str
    language_id: str
    version: int
    text: LineIndex  # the text and its lines (positions <-> offsets)
    tokens: TokenizedDocument | None  # None until a tokenizer is loaded
    revision: int = 0
    # Token edit batches since the last snapshot; None = unknown (next update diffs or rebuilds).
    batches: list[tuple[TokenEdit, ...]] | None = field(default_factory=list)
    desynced: str | None = None  # why the text may differ from the client's
    binary: bool = False  # holds NUL characters: not prose, not analysed
    last: object | None = None  # the last published Analysis (its revision may be older)
    published: int = 0  # analyses published so far (one revision can get several: a settle, a reload)
    full_pass_done: bool = False

    def __post_init__(self) -> None:
        self.binary = "\x00" in self.text.text

    @property
    def n_tokens(self) -> int:
        return len(self.tokens) if self.tokens is not None else 0


@dataclass(frozen=True)
class ChangeReport:
    """What a ``didChange`` did, for the server to log."""

    document: Document
    warnings: tuple[str, ...] = ()
    desynced_now: bool = False
    resynced_now: bool = False


class DocumentStore:
    def __init__(self, codec: PositionCodec):
        self.codec = codec
        self.tokenizer: TextTokenizer | None = None
        self.documents: dict[str, Document] = {}

    def __contains__(self, uri: str) -> bool:
        return uri in self.documents

    def get(self, uri: str) -> Document:
        try:
            return self.documents[uri]
        except KeyError:
            raise UnknownDocument(uri) from None

    # -- lifecycle -----------------------------------------------------------------

    def open(self, uri: str, language_id: str, version: int, text: str) -> Document:
        """Open (or reopen: the client's text replaces whatever the server had)."""
        doc = Document(uri, language_id, version, LineIndex(text), self._tokenize(text))
        old = self.documents.get(uri)
        if old is not None:
            doc.revision = old.revision + 1
        doc.batches = None
        self.documents[uri] = doc
        return doc

    def close(self, uri: str) -> Document:
        doc = self.get(uri)
        del self.documents[uri]
        return doc

    def set_tokenizer(self, tokenizer: TextTokenizer | None) -> None:
        """A new tokenizer (model loaded or changed): re-tokenize every document."""
        self.tokenizer = tokenizer
        for doc in self.documents.values():
            doc.tokens = self._tokenize(doc.text.text)
            doc.batches = None
            doc.revision += 1

    def retokenize(self, doc: Document) -> None:
        """Rebuild ``doc``'s tokens from its text (a resync of the token state)."""
        doc.tokens = self._tokenize(doc.text.text)
        doc.batches = None

    def _tokenize(self, text: str) -> TokenizedDocument | None:
        return None if self.tokenizer is None else TokenizedDocument(text, self.tokenizer)

    # -- changes ---------------------------------------------------------------------

    def change(
        self,
        uri: str,
        version: int,
        changes: Sequence[types.TextDocumentContentChangeEvent],
    ) -> ChangeReport:
        doc = self.get(uri)
        warnings: list[str] = []
        if version <= doc.version:
            warnings.append(f"version {version} is not newer than {doc.version}; applied in arrival order")
        doc.version = version
        doc.revision += 1
        was_desynced = doc.desynced is not None
        for change in changes:
            if isinstance(change, types.TextDocumentContentChangeWholeDocument):
                self._replace_all(doc, change.text)
                doc.desynced = None
                continue
            if doc.desynced is not None:
                continue  # the text is unknown until a full-text change arrives
            try:
                start, end = self._offsets(doc, change.range, warnings)
            except InvalidRange as exc:
                self.desync(doc, f"cannot apply change: {exc}")
                continue
            self._apply(doc, start, end, change.text)
        return ChangeReport(
            doc,
            tuple(warnings),
            desynced_now=not was_desynced and doc.desynced is not None,
            resynced_now=was_desynced and doc.desynced is None,
        )

    def desync(self, doc: Document, reason: str) -> None:
        doc.desynced = reason
        doc.batches = None

    def _offsets(self, doc: Document, rng: types.Range, warnings: list[str]) -> tuple[int, int]:
        issues = []
        for pos in (rng.start, rng.end):
            if pos.line >= doc.text.line_count and not (pos.line == doc.text.line_count and pos.character == 0):
                issues.append(f"line {pos.line} is past the last line ({doc.text.line_count - 1})")
            elif pos.line < doc.text.line_count:
                width = self.codec.client_num_units(doc.text.line_text(pos.line))
                if pos.character > width:
                    issues.append(f"character {pos.character} is past the end of line {pos.line} ({width})")
        if issues:
            where = f"{rng.start.line}:{rng.start.character}-{rng.end.line}:{rng.end.character}"
            warnings.append(f"range {where}: {'; '.join(dict.fromkeys(issues))}; clamped")
        return doc.text.offsets_of(rng, self.codec)

    def _apply(self, doc: Document, start: int, end: int, new_text: str) -> None:
        if doc.tokens is not None:
            try:
                edits = doc.tokens.apply_change(start, end, new_text)
            except InvalidChange as exc:  # offsets come from doc.text, so this means the two drifted
                self.desync(doc, f"token state out of step: {exc}")
                return
            if doc.batches is not None:
                doc.batches.append(tuple(edits))
        doc.text.apply_change(start, end, new_text)
        if "\x00" in new_text:
            doc.binary = True
        elif doc.binary:
            doc.binary = "\x00" in doc.text.text

    def _replace_all(self, doc: Document, text: str) -> None:
        if doc.tokens is not None and doc.desynced is None:
            edits = doc.tokens.replace_all(text)
            if doc.batches is not None:
                doc.batches.append(tuple(edits))
        else:
            doc.tokens = self._tokenize(text)
            doc.batches = None
        doc.text = LineIndex(text)
        doc.binary = "\x00" in text

    # -- snapshots -------------------------------------------------------------------

    def snapshot(self, doc: Document, *, max_tokens: int, unit: str, position_policy: str) -> Snapshot:
        """A read-only copy of what the worker needs; resets the pending edit batches."""
        assert doc.tokens is not None, "no tokenizer yet"
        n = len(doc.tokens)
        limit = min(n, max_tokens)
        ids = tuple(doc.tokens.ids_slice(0, limit)) if limit < n else tuple(doc.tokens.ids)
        spans = doc.tokens.spans[:limit]
        batches = None if doc.batches is None else tuple(doc.batches)
        doc.batches = []
        return Snapshot(
            uri=doc.uri, version=doc.version, revision=doc.revision, text=doc.text.text, ids=ids,
            starts=tuple(s for s, _ in spans), ends=tuple(e for _, e in spans), total_tokens=n,
            batches=batches, unit=unit, position_policy=position_policy,
        )
