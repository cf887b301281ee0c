"""Protocol objects built from a document's results: span diagnostics, the classification
notification, document stats.

Span diagnostics are built from the document's *current* spans
(``Document.current_spans``: results mapped onto the current text, those a later
change touched left out), with ranges from the current text in the client's
position encoding, so they are stamped with the current version and never
point at the wrong text, even while the classification describes an older one.

A long document has thousands of them and LSP sends them all on every push, so
they are kept per section (``SectionDiagnostics``), with lines relative to the
section's first line and as JSON text: a section whose result, changes and first
line's text before it are as before reuses its entry, and a push joins the sections' texts
(``publish_diagnostics_json``), sent without pygls's converter
(``protocol.VqlspProtocol.notify_json_text``). A keystroke builds only its own
section's diagnostics; one that adds or removes a line also renders the later
sections' texts again with their new lines (no span is mapped or positioned
again). Measured on a 100k-token document (536 sections, 4,000 diagnostics, 1.5 MB
per push), a push cost 69 ms of the event loop's CPU before (pygls's converter
walked every value, then ``json.dumps``) and 2.3 ms after.

Which spans become diagnostics: those whose label's rule (``DiagnosticOptions.rule``:
per-label threshold and severity, ``"off"`` for none) lets them through, unless an ignore
comment in the file (``vqlsp.text.ignores``) or the workspace's ``.vqlsp.json`` silences
them (``Silence``). Ignore comments are looked for once per revision, by a substring scan
of the text's chunks that finds none in almost every document.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from vqlsp.analysis.results import SectionResult, SpanResult
from vqlsp.text.ignores import ChunkIgnores, Ignores

from .documents import Document, Publication
from .ignore_file import IGNORE_FILE
from .options import DiagnosticOptions
from .protocol import JsonText

SOURCE = "vqlsp"
CLASSIFICATION = "vqlsp/classification"
RESYNC = "vqlsp/resync"
SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "information": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


def spans_at(spans: Sequence[SpanResult], offset: int) -> list[SpanResult]:
    """The spans holding code-point ``offset`` (its end counts: the cursor sits after the last
    char), one per head (the later where two of a head's spans meet there): the model's own
    head's first, then the extra heads'. ``spans`` are in order of their starts."""
    i = bisect_right([s.start for s in spans], offset)
    per_head: dict[str, SpanResult] = {}
    for span in spans[:i]:
        if offset <= span.end:
            per_head.pop(span.head, None)
            per_head[span.head] = span
    return sorted(per_head.values(), key=lambda s: (s.extra, s.start))


def span_at(spans: Sequence[SpanResult], offset: int) -> SpanResult | None:
    """The first of ``spans_at``: the model's own head's span at ``offset`` where there is one."""
    found = spans_at(spans, offset)
    return found[0] if found else None


@dataclass(frozen=True)
class Silence:
    """What keeps a document's spans from becoming diagnostics, besides the options: ignore
    comments in the file (``vqlsp.text.ignores``) and labels ignored in the workspace."""

    spans: frozenset[tuple[int, int]] = frozenset()  # (start, end) silenced by a comment
    file_labels: frozenset[str] = frozenset()
    workspace_labels: frozenset[str] = frozenset()

    def why(self, span: SpanResult) -> str | None:
        """Why ``span`` is silenced, or None."""
        head = span.head
        names = {span.label} | ({f"{head}/{span.label}"} if head else set())
        if (span.start, span.end) in self.spans:
            return "ignored by a `vqlsp-ignore` comment"
        if names & self.file_labels:
            return "label ignored in this file (`vqlsp-ignore-label`)"
        if names & self.workspace_labels:
            return f"label ignored in the workspace ({IGNORE_FILE})"
        return None


def document_ignores(doc: Document) -> Ignores:
    """The ignore comments of ``doc``'s current text (found once per revision, scanning only
    the text's chunks that changed since the last time: ``ChunkIgnores``)."""
    if doc.ignores is None or doc.ignores[0] != doc.revision:
        if doc.ignore_scan is None or doc.ignore_scan.language != doc.language_id:
            doc.ignore_scan = ChunkIgnores(doc.language_id)
        doc.ignores = (doc.revision, doc.ignore_scan.find(*doc.text.chunks()))
    return doc.ignores[1]


def document_silence(doc: Document, workspace_labels: frozenset[str] = frozenset()) -> Silence:
    ignores = document_ignores(doc)
    spans: frozenset[tuple[int, int]] = frozenset()
    if ignores.sentences:  # only documents with sentence comments look at all their spans
        spans = frozenset(ignores.silenced(doc.text.text, [(s.start, s.end) for s in doc.current_spans()]))
    return Silence(spans, ignores.labels, workspace_labels)


def verdict(span: SpanResult, options: DiagnosticOptions, silence: Silence) -> str:
    """Whether ``span`` gets a diagnostic and why (for hover)."""
    threshold, severity = options.rule(span.label, span.head)
    p = span.probabilities[span.label]
    if severity == "off":
        return f"no diagnostic: diagnostics of `{span.label}` are off"
    if p < threshold:
        return f"no diagnostic: {p:.0%} is below the threshold for `{span.label}` ({threshold:.0%})"
    why = silence.why(span)
    if why is not None:
        return f"no diagnostic: {why}"
    return f"diagnostic: {severity} ({p:.0%} >= {threshold:.0%})"


@dataclass
class SectionDiagnostics:
    """One section's span diagnostics, kept between pushes (``DiagnosticsCache``).

    Lines are relative to the section's first line, so a change above the section that
    adds or removes lines only renders them again (``json_text``) instead of building
    them: mapping spans, finding positions, formatting messages. ``result`` is held (not
    its ``id``: a freed result's id can come back as a newer one's)."""

    result: SectionResult
    changes: int  # the section's changes since ``result`` when built (they only grow until the next result)
    # the text before the section on its first line ("" unless it starts inside a line): the
    # characters of the diagnostics on that line count from the line's start
    prefix: str
    silenced: tuple[tuple[int, int], ...]  # its spans silenced by ignore comments
    # per diagnostic: (start line, start character, end line, end character), lines relative
    ranges: list[tuple[int, int, int, int]]
    rests: list[dict[str, Any]]  # everything but the range
    rest_json: list[str]  # each ``rests`` entry as JSON, without its opening brace
    line: int = -1  # the first line ``text`` is rendered for
    text: bytes = b""  # the diagnostics' JSON, comma-separated (ASCII: ``json.dumps`` escapes the rest)

    def json_text(self, line: int) -> bytes:
        """The diagnostics as JSON values joined by commas, for the section at ``line``."""
        if self.line != line:
            self.line, self.text = line, ",".join(
                f'{{"range":{{"start":{{"line":{line + a},"character":{b}}},'
                f'"end":{{"line":{line + c},"character":{d}}}}},{rest}'
                for (a, b, c, d), rest in zip(self.ranges, self.rest_json)
            ).encode("ascii")
        return self.text

    def values(self, line: int) -> list[dict[str, Any]]:
        """The diagnostics as JSON values, for the section at ``line``."""
        return [{"range": {"start": {"line": line + a, "character": b}, "end": {"line": line + c, "character": d}},
                 **rest} for (a, b, c, d), rest in zip(self.ranges, self.rests)]


@dataclass
class DiagnosticsCache:
    """A document's ``SectionDiagnostics`` by section id, for one set of settings."""

    settings: tuple  # options, span unit, position encoding, ignored labels
    entries: dict[int, SectionDiagnostics] = field(default_factory=dict)


def _sections(
    doc: Document, codec: PositionCodec, options: DiagnosticOptions, unit: str, silence: Silence
) -> list[tuple[SectionDiagnostics, int]]:
    """Every analysed section's diagnostics with the section's first line now (see the module
    docstring for what is reused). Per push this is one short step per section: a long
    document has thousands."""
    if doc.sections is None:
        return []
    settings = (options.key(), unit, str(codec.encoding), silence.file_labels, silence.workspace_labels)
    cache = doc.diagnostics
    if cache is None or cache.settings != settings:
        cache = DiagnosticsCache(settings)
    entries: dict[int, SectionDiagnostics] = {}
    out: list[tuple[SectionDiagnostics, int]] = []
    sections, bounds = doc.sections.sections, doc.sections.char_starts
    for k, (section, (line, column)) in enumerate(zip(sections, doc.text.lines_at(bounds[:-1]))):
        result = section.result
        if result is None:
            continue
        entry = cache.entries.get(section.id)
        prefix = doc.text.line_prefix(bounds[k]) if column else ""
        if (entry is None or entry.result is not result or entry.changes != len(section.changes)
                or entry.prefix != prefix or silence.spans):
            entry = _section(doc, k, entry, line, prefix, codec, options, unit, silence)
        entries[section.id] = entry
        out.append((entry, line))
    cache.entries = entries
    doc.diagnostics = cache
    return out


def _section(
    doc: Document, k: int, entry: SectionDiagnostics | None, line: int, prefix: str, codec: PositionCodec,
    options: DiagnosticOptions, unit: str, silence: Silence,
) -> SectionDiagnostics:
    """Section ``k``'s diagnostics (it starts on ``line``, after ``prefix``): ``entry`` if it
    still holds, else built again."""
    section, start, end = doc.sections.sections[k], doc.sections.char_starts[k], doc.sections.char_starts[k + 1]
    silenced = tuple(sorted(s for s in silence.spans if start <= s[0] < end))
    result, changes = section.result, len(section.changes)
    if (entry is not None and entry.result is result and entry.changes == changes and entry.prefix == prefix
            and entry.silenced == silenced):
        return entry
    floor = min([options.threshold, *(r.threshold for r in options.labels.values() if r.threshold is not None)])
    ranges, rests = [], []
    for span in section.current_spans(floor):
        span = span.shifted(start)
        threshold, severity = options.rule(span.label, span.head)
        if severity != "off" and span.probabilities[span.label] >= threshold and silence.why(span) is None:
            first, last = doc.text.position_at(span.start, codec), doc.text.position_at(span.end, codec)
            ranges.append((first.line - line, first.character, last.line - line, last.character))
            rests.append(_diagnostic_json(span, unit, severity))
    rest_json = [json.dumps(rest, separators=(",", ":"))[1:] for rest in rests]
    return SectionDiagnostics(result, changes, prefix, silenced, ranges, rests, rest_json)  # type: ignore[arg-type]


def section_diagnostics(
    doc: Document, codec: PositionCodec, options: DiagnosticOptions, unit: str, silence: Silence = Silence()
) -> list[dict[str, Any]]:
    """Every section's span diagnostics on the current text, as JSON values."""
    return [item for entry, line in _sections(doc, codec, options, unit, silence) for item in entry.values(line)]


def _diagnostic_json(span: SpanResult, unit: str, severity: str) -> dict[str, Any]:
    """A diagnostic's JSON value, but its range."""
    p = span.probabilities[span.label]
    return {
        "message": f"{span.head + ': ' if span.extra else ''}{span.unit or unit} reads as {span.label} ({p:.0%})",
        "severity": int(SEVERITY[severity]),
        "source": SOURCE,
        "code": span.label,
        "data": {"label": span.label, "probability": p, "probabilities": span.probabilities, "unit": span.unit or unit,
                 "head": span.head},
    }


def publish_diagnostics_json(
    doc: Document, codec: PositionCodec, options: DiagnosticOptions, unit: str, silence: Silence = Silence()
) -> list[bytes]:
    """``textDocument/publishDiagnostics`` params, stamped with the current version, as pieces
    of JSON text to be joined. Each section's diagnostics are kept encoded, so a push copies
    bytes instead of encoding a long document's thousands of JSON values again."""
    head = f'{{"uri":{json.dumps(doc.uri)},"version":{json.dumps(doc.version)},"diagnostics":['.encode("ascii")
    return [head, _items_json(doc, codec, options, unit, silence), b"]}"]


def full_report_json(
    doc: Document | None, codec: PositionCodec, options: DiagnosticOptions, unit: str, result_id: str,
    silence: Silence = Silence(),
) -> JsonText:
    """A full ``textDocument/diagnostic`` report (a pull's answer), as JSON text: the same
    kept bytes as a push, so a client that pulls on every change costs what a push does."""
    items = b"" if doc is None else _items_json(doc, codec, options, unit, silence)
    head = f'{{"kind":"full","resultId":{json.dumps(result_id)},"items":['.encode("ascii")
    return JsonText([head, items, b"]}"])


def _items_json(
    doc: Document, codec: PositionCodec, options: DiagnosticOptions, unit: str, silence: Silence
) -> bytes:
    """Every section's diagnostics on the current text: JSON values, comma-separated."""
    # (a list, not a generator: resuming one is a Python call per section, on the event loop)
    return b",".join([entry.text if entry.line == line else entry.json_text(line)
                      for entry, line in _sections(doc, codec, options, unit, silence) if entry.ranges])


def classification_params(uri: str, pub: Publication, spans: int) -> dict[str, Any]:
    """``vqlsp/classification`` params (the contract's keys, plus ``textHash`` and a few extras).

    ``label`` and ``probabilities`` are the first document head's (the model's own); ``heads``
    has every document head's, by name, when several are served."""
    label = pub.label
    return {
        "uri": uri,
        "version": pub.version,
        "label": label.label if label else None,
        "probabilities": label.probabilities if label else {},
        "tokens": pub.tokens,
        "reused_fraction": round(pub.cost.reused_fraction, 6),
        "ms": round(pub.ms, 3),
        "textHash": pub.text_hash,
        "analysedTokens": pub.analysed_tokens,
        "truncated": False,  # every part of a document is analysed (kept for older clients)
        "fullPass": pub.cost.full_pass,
        "changedTokens": pub.changed_tokens,
        "modelMs": round(pub.cost.ms, 3),
        "engine": pub.engine,
        "spans": spans,
        "positionDrift": pub.drift,
        "settled": pub.settled,
        "sections": pub.sections,
        "sectionsAnalysed": pub.sections_analysed,
        "heads": {h.head: {"label": h.label, "probabilities": h.probabilities} for h in pub.heads},
    }


def compute_json(span: SpanResult | None, pub: Publication | None) -> dict[str, Any] | None:
    """A span's compute on its last update (``SpanCompute``), and whether that was the last update."""
    if span is None or span.compute is None:
        return None
    c = span.compute
    return {"rowsPerToken": round(c.rows_per_token, 4), "learnersPerRow": c.learners_per_row,
            "lastUpdate": pub is not None and c.revision == pub.revision}


def document_stats(
    doc: Document, worker_stats: dict[str, Any], text_hash: str, offset: int | None = None
) -> dict[str, Any]:
    """``vqlsp.documentStats`` result: the last publication, the sections and the state's memory;
    with ``offset`` (code points), the compute of the sentence there against the document's mean."""
    pub = doc.last
    out: dict[str, Any] = {
        "uri": doc.uri,
        "version": doc.version,
        "languageId": doc.language_id,
        "desynced": doc.desynced,
        "current": pub is not None and pub.revision == doc.revision and pub.complete,
    }
    if pub is not None:
        out.update(classification_params(doc.uri, pub, 0))
        out["analysedVersion"] = pub.version
        out["analysedTextHash"] = pub.text_hash
        out["rows_changed_per_layer"] = list(pub.cost.rows_changed_per_layer)
    spans = doc.current_spans()
    out["spans"] = len(spans)
    out["span_labels"] = [
        {"start": s.start, "end": s.end, "label": s.label, "probability": s.probabilities[s.label], "head": s.head,
         "compute": compute_json(s, pub)} for s in spans
    ]
    if pub is not None:
        out["compute"] = {"rowsPerToken": round(pub.cost.rows_per_token, 4), "learnersPerRow": pub.cost.learners_per_row}
    if offset is not None:
        out["computeAtCursor"] = compute_json(span_at(spans, offset), pub)
    out["sections"] = [list(b) for b in doc.sections.bounds()] if doc.sections is not None else []
    out["focus"] = doc.focus  # where the server thinks the writer is (code points), if it knows
    # The server's current text, whatever was last analysed: what drift checks compare.
    out.update(version=doc.version, tokens=doc.n_tokens, textHash=text_hash)
    out.update(worker_stats)
    return out
