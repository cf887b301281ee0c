"""Protocol objects built from an ``Analysis``: span diagnostics, the classification notification.

Ranges are computed on the analysis's own text (a ``LineIndex`` of it) in the
client's position encoding; the server publishes only analyses whose revision
is still current, so that text is the client's text.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from vqlsp.text.positions import LineIndex

from .options import DiagnosticOptions
from .worker import Analysis, SpanResult, text_hash

SOURCE = "vqlsp"
CLASSIFICATION = "vqlsp/classification"
RESYNC = "vqlsp/resync"
SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "information": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


def flagged_spans(analysis: Analysis, options: DiagnosticOptions) -> list[SpanResult]:
    """Spans whose label's probability reaches the threshold."""
    return [s for s in analysis.spans if s.probabilities[s.label] >= options.threshold]


def lsp_diagnostic(
    span: SpanResult, unit: str, lines: LineIndex, codec: PositionCodec, options: DiagnosticOptions
) -> types.Diagnostic:
    p = span.probabilities[span.label]
    return types.Diagnostic(
        range=lines.range_of(span.start, span.end, codec),
        message=f"{unit} reads as {span.label} ({p:.0%})",
        severity=SEVERITY[options.severity],
        source=SOURCE,
        code=span.label,
        data={"label": span.label, "probability": p, "probabilities": span.probabilities, "unit": unit},
    )


def lsp_diagnostics(analysis: Analysis, codec: PositionCodec, options: DiagnosticOptions) -> list[types.Diagnostic]:
    spans = flagged_spans(analysis, options)
    if not spans:
        return []
    lines = LineIndex(analysis.text)
    return [lsp_diagnostic(s, analysis.unit, lines, codec, options) for s in spans]


def lsp_publish_diagnostics(
    analysis: Analysis, codec: PositionCodec, options: DiagnosticOptions
) -> types.PublishDiagnosticsParams:
    return types.PublishDiagnosticsParams(
        uri=analysis.uri, version=analysis.version, diagnostics=lsp_diagnostics(analysis, codec, options)
    )


def lsp_full_report(analysis: Analysis | None, codec: PositionCodec, options: DiagnosticOptions, result_id: str):
    items = [] if analysis is None else lsp_diagnostics(analysis, codec, options)
    return types.RelatedFullDocumentDiagnosticReport(items=items, result_id=result_id)


def classification_params(analysis: Analysis) -> dict[str, Any]:
    """``vqlsp/classification`` params (the contract's keys, plus ``textHash`` and a few extras)."""
    doc = analysis.document
    return {
        "uri": analysis.uri,
        "version": analysis.version,
        "label": doc.label if doc else None,
        "probabilities": doc.probabilities if doc else {},
        "tokens": analysis.tokens,
        "reused_fraction": round(analysis.cost.reused_fraction, 6),
        "ms": round(analysis.ms, 3),
        "textHash": analysis.text_hash,
        "analysedTokens": analysis.analysed_tokens,
        "truncated": analysis.analysed_tokens < analysis.tokens,
        "fullPass": analysis.cost.full_pass,
        "changedTokens": analysis.changed_tokens,
        "modelMs": round(analysis.cost.ms, 3),
        "engine": analysis.engine,
        "spans": len(analysis.spans),
        "positionDrift": analysis.drift,
        "settled": analysis.settled,
    }


def document_stats(analysis: Analysis | None, doc, worker_stats: dict[str, Any]) -> dict[str, Any]:
    """``vqlsp.documentStats`` result: the last published analysis and the state's memory."""
    out: dict[str, Any] = {
        "uri": doc.uri,
        "version": doc.version,
        "languageId": doc.language_id,
        "desynced": doc.desynced,
        "current": analysis is not None and analysis.revision == doc.revision,
    }
    if analysis is not None:
        out.update(classification_params(analysis))
        out["analysedVersion"] = analysis.version
        out["analysedTextHash"] = analysis.text_hash
        out["rows_changed_per_layer"] = list(analysis.cost.rows_changed_per_layer)
        out["span_labels"] = [
            {"start": s.start, "end": s.end, "label": s.label, "probability": s.probabilities[s.label]}
            for s in analysis.spans
        ]
    # The server's current text, whatever was last analysed: what drift checks compare.
    out.update(version=doc.version, tokens=doc.n_tokens, textHash=text_hash(doc.text.text))
    out.update(worker_stats)
    return out
