"""``Analyzer`` over the incremental engine's ``IncrementalSession`` (``vqlsp.engine.session``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from vqlsp.engine.edits import TokenEdit
from vqlsp.engine.session import IncrementalSession

from .analysis import HeadOutput, UpdateCost, head_from_probabilities, tensor_bytes


class EngineAnalyzer:
    """A document's cached engine state; updates cost what the edit changed."""

    kind = "incremental"

    def __init__(self, model, ids: Sequence[int], position_policy: str):
        t0 = time.perf_counter()
        self.session = IncrementalSession(model, list(ids), position_policy)
        self.ids: tuple[int, ...] = tuple(self.session.token_ids)
        stats = self.session.last_stats
        rows = tuple(stats.rows_changed) if stats else (0,) * model.cfg.depth
        self.first_cost = UpdateCost(True, len(self.ids), rows, (time.perf_counter() - t0) * 1e3)

    @property
    def drift(self) -> int:
        return self.session.drift

    def apply(self, edits: Sequence[TokenEdit]) -> UpdateCost:
        stats = self.session.apply(edits)
        # The session's own ids, not our bookkeeping: what the caller checks against the text.
        self.ids = tuple(self.session.token_ids)
        return self._cost(stats)

    def reindex(self) -> UpdateCost:
        return self._cost(self.session.reindex())

    def _cost(self, stats) -> UpdateCost:
        rows = tuple(stats.rows_changed) or (0,) * self.session.cfg.depth
        return UpdateCost(False, stats.tokens, rows, stats.ms)

    def heads(self, token_spans: Sequence[tuple[int, int]]) -> tuple[HeadOutput | None, list[HeadOutput]]:
        out = self.session.outputs(list(token_spans) if token_spans else None)
        document = None if out.probabilities is None else head_from_probabilities(out.labels, out.probabilities)
        spans: list[HeadOutput] = []
        if out.spans is not None and self.session.model.span_head is not None:
            labels = self.session.model.span_head.labels
            spans = [head_from_probabilities(labels, row) for row in out.spans]
        return document, spans

    def state_bytes(self) -> int:
        """Every buffer the session allocated (capacity, not just live rows), counted once."""
        return tensor_bytes(self.session)
