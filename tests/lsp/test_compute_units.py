"""The compute figures hover shows, from hand-made results (no server, no model)."""

from __future__ import annotations

from vqlsp.analysis.results import HeadOutput, SpanCompute, SpanResult, UpdateCost
from vqlsp.lsp.documents import Publication
from vqlsp.lsp.hover import compute_line, hover_markdown


def _pub(cost: UpdateCost, revision: int = 7) -> Publication:
    return Publication(
        version=3, revision=revision, label=HeadOutput("sport", {"sport": 0.9, "tech": 0.1}), cost=cost,
        changed_tokens=1, ms=5.0, engine="incremental", drift=0, settled=False, sections=1, sections_analysed=1,
        analysed_tokens=100, tokens=100, text_hash=None,
    )


def test_update_cost_per_token_and_per_span():
    cost = UpdateCost(False, 4, (2, 1), row_work=(0, 2, 1, 0), row_learners=(0.0, 5.0, 1.0, 0.0), learners=6.0)
    assert cost.rows_per_token == 0.75 and cost.learners_per_row == 2.0
    assert cost.span_compute(1, 3, 7) == SpanCompute(1.5, 2.0, 7)
    assert cost.span_compute(0, 1) == SpanCompute(0.0, None, -1)
    assert cost.span_compute(2, 2) is None
    full = UpdateCost(True, 4, (4, 4, 4))
    assert full.rows_per_token == 3.0 and full.span_compute(0, 2) == SpanCompute(3.0, None, -1)
    assert UpdateCost(False, 4, (1, 1)).span_compute(0, 2) is None  # not counted per token


def test_hover_compares_the_sentence_with_the_document():
    cost = UpdateCost(False, 100, (10, 20), learners=60.0)
    span = SpanResult(0, 10, "pos", {"pos": 0.8, "neg": 0.2}, compute=SpanCompute(1.5, 2.5, 7))
    line = compute_line(_pub(cost), span, "sentence")
    assert line == ("Compute for this sentence on the last update: 1.50 layers recomputed per token (document "
                    "mean 0.30); ACM learners per row 2.50 (document 2.00).")
    assert line in hover_markdown(_pub(cost), [span], "sentence", stale=False)
    older = compute_line(_pub(cost, revision=8), span, "sentence")
    assert older.startswith("Compute for this sentence: none on the last update (document mean 0.30")
    assert compute_line(_pub(cost), SpanResult(0, 10, "pos", {"pos": 1.0}), "sentence") is None
    assert compute_line(_pub(cost), None, "sentence") is None


def test_shifting_a_span_keeps_its_compute():
    span = SpanResult(0, 10, "pos", {"pos": 1.0}, compute=SpanCompute(2.0))
    assert span.shifted(5) == SpanResult(5, 15, "pos", {"pos": 1.0}, compute=SpanCompute(2.0))
