"""Hover text: the document's label and probabilities, the span under the cursor, the last update's cost."""

from __future__ import annotations

from bisect import bisect_right

from lsprotocol import types

from .worker import Analysis, SpanResult


def span_at(analysis: Analysis, offset: int) -> SpanResult | None:
    """The span holding code-point ``offset`` (its end counts: the cursor sits after the last char)."""
    starts = [s.start for s in analysis.spans]
    i = bisect_right(starts, offset) - 1
    if i >= 0 and offset <= analysis.spans[i].end:
        return analysis.spans[i]
    return None


def _bars(probabilities: dict[str, float]) -> list[str]:
    rows = sorted(probabilities.items(), key=lambda kv: -kv[1])
    return [f"| {label} | {p:.1%} |" for label, p in rows]


def hover_markdown(analysis: Analysis, offset: int | None, stale: bool) -> str:
    doc = analysis.document
    lines = []
    if doc is not None:
        lines += [f"**vqlsp**: document reads as **{doc.label}** ({doc.probabilities[doc.label]:.0%})", ""]
        lines += ["| label | probability |", "|---|---|", *_bars(doc.probabilities), ""]
    else:
        lines += ["**vqlsp**: this model has no document head", ""]
    span = None if offset is None else span_at(analysis, offset)
    if span is not None:
        p = span.probabilities[span.label]
        lines += [f"This {analysis.unit}: **{span.label}** ({p:.0%})", ""]
    cost = analysis.cost
    if cost.full_pass:
        work = f"full pass over {analysis.analysed_tokens} tokens"
    else:
        changed = sum(cost.rows_changed_per_layer)
        total = analysis.analysed_tokens * len(cost.rows_changed_per_layer)
        work = f"recomputed {changed} of {total} rows, {cost.reused_fraction:.1%} reused ({analysis.engine})"
    lines.append(f"Last update: {work}, {analysis.ms:.1f} ms.")
    if analysis.analysed_tokens < analysis.tokens:
        lines.append(f"Only the first {analysis.analysed_tokens} of {analysis.tokens} tokens are analysed.")
    if stale:
        lines.append("_(updating: these results are for an earlier version)_")
    return "\n".join(lines)


def lsp_hover(analysis: Analysis, offset: int | None, stale: bool) -> types.Hover:
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=hover_markdown(analysis, offset, stale))
    )
