"""One section's model state behind one small interface: open, apply, read outputs.

The worker needs four things from the model per section: a full first pass
over token ids, an update by token edits, what the heads read (the final states
for span heads, the pooled features for document heads), and the state's size.
The heads themselves are applied here too (``span_outputs``,
``document_outputs``), to any number of heads: the model's own and the extra
heads served beside them (``model/head_files.py``) read the same states. ``open_analyzer`` returns the incremental engine's session
(``EngineAnalyzer``), or a dense analyzer that re-runs the whole section on
every update (``DenseAnalyzer``: the reference the engine must equal, and the
benchmark's baseline). Both keep the token ids they were computed on in
``ids`` so the caller can prove it never reads results of the wrong text.
Everything here runs on the inference worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.engine.session import IncrementalSession
from vqlsp.model.heads import DocumentHead, SpanHead
from vqlsp.model.transformer import VQTransformer

from .results import HeadOutput, UpdateCost


class Analyzer(Protocol):
    ids: tuple[int, ...]  # the token ids the state was computed on
    kind: str  # "incremental" | "dense"

    @property
    def drift(self) -> int:
        """How far the position ids are from exact (0: the results are exact-position results)."""
        ...

    def apply(self, edits: Sequence[TokenEdit]) -> UpdateCost: ...

    def apply_in_steps(self, edits: Sequence[TokenEdit]) -> Iterator[int]:
        """``apply`` in steps (a layer each, where the analyzer can), so that a background
        build can give way between two; the analyzer is unusable until it is exhausted."""
        ...

    def spans(self, token_spans: Sequence[tuple[int, int]]) -> list[HeadOutput]:
        """The span head's output for each token span (empty without a span head)."""
        ...

    def pooled(self) -> torch.Tensor | None:
        """The document head's pooled feature of these tokens (None: no head, or no tokens)."""
        ...

    def hidden(self) -> torch.Tensor | None:
        """(n, hidden_dim) final states in token order (None: no tokens)."""
        ...

    def features(self) -> Pooled | None:
        """Every pooling of the final states (None: no tokens)."""
        ...

    def state_bytes(self) -> int: ...


@dataclass(frozen=True)
class Pooled:
    """A section's final states pooled each way a document head may read them."""

    mean: torch.Tensor  # (hidden_dim,)
    last: torch.Tensor  # (hidden_dim,) the last token's state

    def read_by(self, head: DocumentHead) -> torch.Tensor:
        return self.last if head.pooling == "last" else self.mean


def head_from_probabilities(labels: Sequence[str], probabilities: torch.Tensor, head: str = "") -> HeadOutput:
    probs = probabilities.float().cpu().tolist()
    best = max(range(len(probs)), key=probs.__getitem__)
    return HeadOutput(labels[best], dict(zip(labels, probs)), head)


@torch.no_grad()
def document_outputs(
    heads: Sequence[DocumentHead], mean: torch.Tensor | None, last: torch.Tensor | None
) -> tuple[HeadOutput, ...]:
    """Each document head on the document's pooled features (``mean`` over all its tokens, the
    ``last`` token's state; None for an empty document: each head's prior)."""
    out = []
    for head in heads:
        feature = last if head.pooling == "last" else mean
        logits = head.linear.bias if feature is None else head.linear(feature.to(head.linear.weight.dtype))
        out.append(head_from_probabilities(head.labels, torch.softmax(logits.float(), -1), head.name))
    return tuple(out)


@torch.no_grad()
def span_outputs(
    heads: Sequence[SpanHead], hidden: torch.Tensor | None, token_spans: Sequence[tuple[int, int]]
) -> list[tuple[HeadOutput, ...]]:
    """For each token span, every span head's output (in the order of ``heads``)."""
    if not heads or not token_spans or hidden is None:
        return [() for _ in token_spans]
    per_head = [torch.softmax(head(hidden, list(token_spans)).float(), -1).cpu() for head in heads]
    return [
        tuple(head_from_probabilities(head.labels, probs[i], head.name) for head, probs in zip(heads, per_head))
        for i in range(len(token_spans))
    ]


def document_output(model: VQTransformer, sections: Sequence[tuple[int, torch.Tensor | None]]) -> HeadOutput | None:
    """The document head over sections given as ``(tokens, pooled feature)``, in document order.

    Mean pooling over the whole document is the token-weighted mean of the sections'
    means; last-token pooling reads the last section's. No tokens: the head's prior.
    """
    head = model.document_head
    if head is None:
        return None
    present = [(n, f) for n, f in sections if n and f is not None]
    if not present:
        logits = head.linear.bias
    else:
        if head.pooling == "last":
            feature = present[-1][1]
        else:
            total = sum(n for n, _ in present)
            feature = sum(f.double() * n for n, f in present) / total
        logits = head.linear(feature.to(head.linear.weight.dtype))
    return head_from_probabilities(head.labels, torch.softmax(logits.float(), -1), head.name)


def _span_outputs(model: VQTransformer, probabilities: torch.Tensor | None) -> list[HeadOutput]:
    if probabilities is None or model.span_head is None:
        return []
    return [head_from_probabilities(model.span_head.labels, row, model.span_head.name) for row in probabilities]


class DenseAnalyzer:
    """Re-runs the whole section on every update; keeps its final hidden states for the heads."""

    kind = "dense"
    drift = 0  # always exact position ids

    def __init__(self, model: VQTransformer, ids: Sequence[int]):
        self.model = model
        self.ids: tuple[int, ...] = ()
        self.states: torch.Tensor | None = None  # (T, D) final states of ``ids``
        self.first_cost = self._run(tuple(ids), full=True)

    @torch.no_grad()
    def _run(self, ids: tuple[int, ...], full: bool) -> UpdateCost:
        t0 = time.perf_counter()
        self.states = self.model(torch.tensor([ids], device=self.model.device)).hidden[0] if ids else None
        self.ids = ids
        depth = self.model.cfg.depth
        return UpdateCost(full, len(ids), (len(ids),) * depth, (time.perf_counter() - t0) * 1e3, (depth,) * len(ids))

    def apply(self, edits: Sequence[TokenEdit]) -> UpdateCost:
        return self._run(tuple(apply_edits(self.ids, edits)), full=False)

    def apply_in_steps(self, edits: Sequence[TokenEdit]) -> Iterator[int]:
        self.apply(edits)  # one step: the dense forward is not cut by layer
        yield 0

    @torch.no_grad()
    def spans(self, token_spans: Sequence[tuple[int, int]]) -> list[HeadOutput]:
        if self.model.span_head is None or self.states is None or not token_spans:
            return []
        logits = self.model.span_head(self.states, list(token_spans))  # (n_spans, n_labels)
        return _span_outputs(self.model, torch.softmax(logits.float(), -1))

    @torch.no_grad()
    def pooled(self) -> torch.Tensor | None:
        head = self.model.document_head
        if head is None or self.states is None:
            return None
        return head.pool(self.states[None])[0]

    def hidden(self) -> torch.Tensor | None:
        return self.states

    def features(self) -> Pooled | None:
        if self.states is None:
            return None
        return Pooled(self.states.mean(0), self.states[-1])

    def state_bytes(self) -> int:
        return 0 if self.states is None else self.states.numel() * self.states.element_size()


class EngineAnalyzer:
    """A section's cached engine state; updates cost what the edit changed."""

    kind = "incremental"

    def __init__(self, model: VQTransformer, ids: Sequence[int], position_policy: str):
        t0 = time.perf_counter()
        self.session = IncrementalSession(model, list(ids), position_policy)
        self.ids: tuple[int, ...] = tuple(self.session.token_ids)
        stats = self.session.last_stats
        if stats is None:
            self.first_cost = UpdateCost(True, 0, (0,) * model.cfg.depth, (time.perf_counter() - t0) * 1e3)
        else:
            self.first_cost = _engine_cost(stats, True, (time.perf_counter() - t0) * 1e3)
        self._bytes: tuple[int, int] = (-1, 0)  # (capacity it was measured at, bytes)

    @property
    def drift(self) -> int:
        return self.session.drift

    def apply(self, edits: Sequence[TokenEdit]) -> UpdateCost:
        stats = self.session.apply(edits)
        # The session's own ids, not our bookkeeping: what the caller checks against the text.
        self.ids = tuple(self.session.token_ids)
        if not stats.rows_changed:  # nothing to do
            return UpdateCost(False, stats.tokens, (0,) * self.session.cfg.depth, stats.ms)
        return _engine_cost(stats, False, stats.ms)

    def apply_in_steps(self, edits: Sequence[TokenEdit]) -> Iterator[int]:
        yield from self.session.apply_in_steps(edits)
        self.ids = tuple(self.session.token_ids)

    def spans(self, token_spans: Sequence[tuple[int, int]]) -> list[HeadOutput]:
        if not token_spans:
            return []
        return _span_outputs(self.session.model, self.session.outputs(list(token_spans)).spans)

    @torch.no_grad()
    def pooled(self) -> torch.Tensor | None:
        head, session = self.session.model.document_head, self.session
        if head is None or not session.n:
            return None
        state = session.state
        if head.pooling == "last":
            return state.hidden[state.order[session.n - 1]]
        return session.pooled_sum / session.n

    @torch.no_grad()
    def hidden(self) -> torch.Tensor | None:
        return self.session.outputs(hidden=True).hidden if self.session.n else None

    @torch.no_grad()
    def features(self) -> Pooled | None:
        session, state = self.session, self.session.state
        if not session.n:
            return None
        return Pooled((session.pooled_sum / session.n).to(state.dtype), state.hidden[state.order[session.n - 1]])

    def state_bytes(self) -> int:
        """Every buffer the session allocated (capacity, not just live rows). Measured again
        only when the buffers grew: a walk over the session's tensors is not per keystroke."""
        capacity = self.session.state.capacity
        if self._bytes[0] != capacity:
            self._bytes = (capacity, tensor_bytes(self.session))
        return self._bytes[1]


def _engine_cost(stats, full_pass: bool, ms: float) -> UpdateCost:
    """An engine update's ``UpdateStats`` as the plain values the server reads."""
    learners = stats.row_learners
    return UpdateCost(
        full_pass, stats.tokens, tuple(stats.rows_changed), ms,
        row_work=tuple(stats.row_work.tolist()) if stats.row_work is not None else (),
        row_learners=tuple(learners.tolist()) if learners is not None else (),
        learners=float(learners.sum()) if learners is not None else None,
    )


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
            continue  # the model's weights are shared, not per-section state
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
        elif hasattr(obj, "__slots__"):
            stack.extend(getattr(obj, s) for s in obj.__slots__ if hasattr(obj, s))
    return total


def open_analyzer(
    model: VQTransformer, ids: Sequence[int], position_policy: str = "stable", *, dense: bool = False
) -> tuple[Analyzer, UpdateCost]:
    """A full first pass over ``ids``; returns the analyzer and what the pass cost."""
    analyzer: DenseAnalyzer | EngineAnalyzer
    if dense or not model.cfg.vq.enabled:
        analyzer = DenseAnalyzer(model, ids)
    else:
        analyzer = EngineAnalyzer(model, ids, position_policy)
    return analyzer, analyzer.first_cost
