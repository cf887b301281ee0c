"""Hover text: the document's label and probabilities; the spans under the cursor (the model's
own span head's first, then each extra head's for the same place), each with all its label
probabilities and whether (and why not) it has a diagnostic; the compute the last update saved by
reusing the cached state."""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types

from vqlsp.analysis.results import SpanResult

from .diagnostics import Silence, verdict
from .documents import Publication
from .options import DiagnosticOptions


def _bars(probabilities: dict[str, float]) -> list[str]:
    rows = sorted(probabilities.items(), key=lambda kv: -kv[1])
    return [f"| {label} | {p:.1%} |" for label, p in rows]


def hover_markdown(
    pub: Publication, spans: Sequence[SpanResult], unit: str, stale: bool,
    options: DiagnosticOptions | None = None, silence: Silence | None = None,
) -> str:
    """``spans``: those under the cursor (``diagnostics.spans_at``), the model's own head's first."""
    label = pub.label
    lines = []
    if label is not None:
        lines += [f"**vqlsp**: document reads as **{label.label}** ({label.probabilities[label.label]:.0%})", ""]
        lines += ["| label | probability |", "|---|---|", *_bars(label.probabilities), ""]
    else:
        lines += ["**vqlsp**: this model has no document head", ""]
    for span in spans:
        p = span.probabilities[span.label]
        what = span.unit or unit
        title = f"Head **{span.head}**, this {what}" if span.extra else f"This {what}"
        lines += [f"{title}: **{span.label}** ({p:.0%})", ""]
        lines += [f"| {what} label | probability |", "|---|---|", *_bars(span.probabilities), ""]
        lines += [verdict(span, options or DiagnosticOptions(), silence or Silence()), ""]
    span = spans[0] if spans else None
    if (compute := compute_line(pub, span, span.unit or unit if span else unit)) is not None:
        lines += [compute, ""]
    cost = pub.cost
    if cost.full_pass:
        work = f"full pass over {pub.analysed_tokens} tokens (nothing reused yet)"
    else:
        changed = sum(cost.rows_changed_per_layer)
        total = pub.tokens * len(cost.rows_changed_per_layer)
        saved = f"{total / changed:.1f}x fewer" if changed else "no"
        work = (f"compute saved: {cost.reused_fraction:.1%} of the (row, layer) work reused from the cached "
                f"state, {changed} of {total} rows recomputed ({saved} than a full pass; {pub.engine})")
    lines.append(f"Last update: {work}, {pub.ms:.1f} ms.")
    if pub.sections > 1:
        lines.append(f"Analysed in {pub.sections} sections ({pub.sections_analysed} done).")
    if stale:
        lines.append("_(updating: these results are for an earlier version)_")
    return "\n".join(lines)


def compute_line(pub: Publication, span: SpanResult | None, unit: str) -> str | None:
    """How much compute the span under the cursor needed, against the document's mean (issue 15)."""
    if span is None or span.compute is None:
        return None
    mine, cost = span.compute, pub.cost
    if mine.revision == pub.revision:
        line = (f"Compute for this {unit} on the last update: {mine.rows_per_token:.2f} layers recomputed per "
                f"token (document mean {cost.rows_per_token:.2f})")
    else:
        line = (f"Compute for this {unit}: none on the last update (document mean {cost.rows_per_token:.2f} "
                f"layers recomputed per token); {mine.rows_per_token:.2f} per token when it was last computed")
    if mine.learners_per_row is not None:
        doc = cost.learners_per_row
        line += f"; ACM learners per row {mine.learners_per_row:.2f}" + (f" (document {doc:.2f})" if doc else "")
    return line + "."


def lsp_hover(
    pub: Publication, spans: Sequence[SpanResult], unit: str, stale: bool,
    options: DiagnosticOptions | None = None, silence: Silence | None = None,
) -> types.Hover:
    value = hover_markdown(pub, spans, unit, stale, options, silence)
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=value))
