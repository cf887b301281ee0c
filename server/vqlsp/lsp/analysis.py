"""One document's model state behind one small interface: open, apply, read outputs.

The server needs three things from the model per document: a full first pass
over token ids, an update by token edits, and the heads' outputs (document
label, span labels for given token spans). ``open_analyzer`` returns the
incremental engine's session when ``vqlsp.engine.session`` provides one, and a
dense analyzer (re-run the whole model on every update; the reference the
engine must equal) otherwise or when asked. Both keep the token ids they were
computed on in ``ids`` so the caller can prove it never reads results of the
wrong text. Everything here runs on the inference worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.model.transformer import VQTransformer


@dataclass(frozen=True)
class HeadOutput:
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class UpdateCost:
    """What one update computed, for the classification notification and hover."""

    full_pass: bool
    tokens: int
    rows_changed_per_layer: tuple[int, ...] = field(default_factory=tuple)
    ms: float = 0.0

    @property
    def reused_fraction(self) -> float:
        """Share of the (row, layer) computations taken from the cache instead of recomputed."""
        total = self.tokens * len(self.rows_changed_per_layer)
        if self.full_pass or total == 0:
            return 0.0
        return max(0.0, 1.0 - sum(self.rows_changed_per_layer) / total)


class Analyzer(Protocol):
    ids: tuple[int, ...]  # the token ids the state was computed on
    kind: str  # "incremental" | "dense"

    @property
    def drift(self) -> int:
        """How far the position ids are from exact (0: the results are exact-position results)."""
        ...

    def apply(self, edits: Sequence[TokenEdit]) -> UpdateCost: ...

    def reindex(self) -> UpdateCost:
        """Exact position ids from now on; updates what that changes."""
        ...

    def heads(self, token_spans: Sequence[tuple[int, int]]) -> tuple[HeadOutput | None, list[HeadOutput]]:
        """The document head's output (None without one) and the span head's for each token span."""
        ...

    def state_bytes(self) -> int: ...


def _head_output(labels: Sequence[str], logits: torch.Tensor) -> HeadOutput:
    return head_from_probabilities(labels, torch.softmax(logits.float(), -1))


def head_from_probabilities(labels: Sequence[str], probabilities: torch.Tensor) -> HeadOutput:
    probs = probabilities.cpu().tolist()
    best = max(range(len(probs)), key=probs.__getitem__)
    return HeadOutput(labels[best], dict(zip(labels, probs)))


def tensor_bytes(*objects: object) -> int:
    """Bytes of the distinct tensor storages reachable from ``objects`` (attributes, lists, dicts)."""
    seen: set[int] = set()
    storages: set[int] = set()
    total = 0
    stack = list(objects)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in storages:
                storages.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, torch.nn.Module):
            continue  # the model's weights are shared, not per-document state
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
        elif hasattr(obj, "__slots__"):
            stack.extend(getattr(obj, s) for s in obj.__slots__ if hasattr(obj, s))
    return total


class DenseAnalyzer:
    """Re-runs the whole model on every update; keeps the final hidden states for the heads."""

    kind = "dense"
    drift = 0  # always exact position ids

    def __init__(self, model: VQTransformer, ids: Sequence[int]):
        self.model = model
        self.ids: tuple[int, ...] = ()
        self.hidden: torch.Tensor | None = None  # (T, D) final states of ``ids``
        self.first_cost = self._run(tuple(ids), full=True)

    @torch.no_grad()
    def _run(self, ids: tuple[int, ...], full: bool) -> UpdateCost:
        t0 = time.perf_counter()
        if ids:
            x = torch.tensor([ids], device=self.model.device)
            self.hidden = self.model(x).hidden[0]  # (T, D)
        else:
            self.hidden = None
        self.ids = ids
        depth = self.model.cfg.depth
        return UpdateCost(full, len(ids), (len(ids),) * depth, (time.perf_counter() - t0) * 1e3)

    def apply(self, edits: Sequence[TokenEdit]) -> UpdateCost:
        return self._run(tuple(apply_edits(self.ids, edits)), full=False)

    def reindex(self) -> UpdateCost:
        return UpdateCost(False, len(self.ids), (0,) * self.model.cfg.depth)

    @torch.no_grad()
    def heads(self, token_spans: Sequence[tuple[int, int]]) -> tuple[HeadOutput | None, list[HeadOutput]]:
        document = None
        if (head := self.model.document_head) is not None:
            # An empty document gets the head's prior, as ``classify_ids`` gives.
            logits = head.linear.bias if self.hidden is None else head(self.hidden[None])[0]
            document = _head_output(head.labels, logits)
        spans: list[HeadOutput] = []
        span_head = self.model.span_head
        if span_head is not None and self.hidden is not None and token_spans:
            logits = span_head(self.hidden, list(token_spans))  # (n_spans, n_labels)
            spans = [_head_output(span_head.labels, row) for row in logits]
        return document, spans

    def state_bytes(self) -> int:
        return 0 if self.hidden is None else self.hidden.numel() * self.hidden.element_size()


def engine_available() -> bool:
    try:
        from vqlsp.engine.session import IncrementalSession  # noqa: F401
    except ImportError:
        return False
    return True


def open_analyzer(
    model: VQTransformer, ids: Sequence[int], position_policy: str = "stable", *, dense: bool = False
) -> tuple[Analyzer, UpdateCost]:
    """A full first pass over ``ids``; returns the analyzer and what the pass cost."""
    if not dense and engine_available():
        from .engine_adapter import EngineAnalyzer

        analyzer = EngineAnalyzer(model, ids, position_policy)
        return analyzer, analyzer.first_cost
    analyzer = DenseAnalyzer(model, ids)
    return analyzer, analyzer.first_cost
