"""What every strategy returns: per-edit ``UpdateStats`` and the document's ``Outputs``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .edits import TokenEdit
from .ops import OpCounter
from .plan import EditPlan


@dataclass
class UpdateStats:
    """The cost of one ``apply`` call.

    Per-layer lists have one entry per layer run (``cfg.depth``).
    """

    tokens: int  # document length after the call
    rows_changed: list[int] = field(default_factory=list)  # rows through q/k/v or W_o+MLP
    code_flips: list[int] = field(default_factory=list)  # (row, head) codes of surviving rows that changed
    searched: list[int] = field(default_factory=list)  # rows whose nearest code was searched
    recomputed: list[int] = field(default_factory=list)  # rows whose attention was computed in full
    learners: list[int] = field(default_factory=list)  # ACM models: learners run by the changed rows, per layer
    ops: OpCounter = field(default_factory=OpCounter)
    ms: float = 0.0  # wall time of the call (device synchronized)
    reindexed: bool = False  # the stable position policy re-indexed every position
    bucket: int = 0  # incremental, static loop: rows each per-layer set could hold (0: dynamic loop)
    redos: int = 0  # incremental, static loop: runs redone with a larger bucket after an overflow
    stage_ms: dict[str, float] = field(default_factory=dict)  # incremental only: time by stage
    layer_ms: list[float] = field(default_factory=list)  # incremental only: time per layer
    # incremental only, document order: the layers at which each row was recomputed (sums to
    # sum(rows_changed)), and the learners an ACM MLP ran for it over those layers (ACM MLPs only)
    row_work: torch.Tensor | None = None  # (n,) int32
    row_learners: torch.Tensor | None = None  # (n,) float32

    @property
    def total_ops(self) -> int:
        return self.ops.total

    def changed_fraction(self) -> float:
        """Rows that changed, summed over layers, as a fraction of all (row, layer) pairs."""
        if not self.rows_changed or not self.tokens:
            return 0.0
        return sum(self.rows_changed) / (len(self.rows_changed) * self.tokens)


@contextmanager
def timed_call(n: int, edits: Sequence[TokenEdit], device: torch.device) -> Iterator[tuple[EditPlan, UpdateStats]]:
    """One ``apply`` call's plan (for a document of ``n`` tokens) and its stats, timed the
    same way for every strategy so their ms compare: from before the plan is built until
    CUDA is synchronized after the block (``UpdateStats.ms``)."""
    start = time.perf_counter()
    plan = EditPlan.build(n, edits)
    stats = UpdateStats(tokens=plan.new_len)
    yield plan, stats
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats.ms = (time.perf_counter() - start) * 1e3


def timed_apply(
    n: int,
    edits: Sequence[TokenEdit],
    device: torch.device,
    update: Callable[[EditPlan, UpdateStats], None],
    *,
    always: bool = False,
) -> UpdateStats:
    """One ``apply`` call (``timed_call``): runs ``update(plan, stats)`` unless the edits
    change nothing (and not ``always``: a re-index changes no token)."""
    with timed_call(n, edits, device) as (plan, stats):
        if always or not plan.empty:
            update(plan, stats)
    return stats


@dataclass
class Outputs:
    """Document-level results (and, on request, the final states)."""

    probabilities: torch.Tensor | None  # (n_labels,) float32, document head; None without one
    labels: list[str]
    spans: torch.Tensor | None = None  # (n_spans, n_span_labels) span-head probabilities, on request
    hidden: torch.Tensor | None = None  # (n, hidden_dim) final states in document order, on request

    @property
    def label(self) -> str | None:
        if self.probabilities is None or not self.labels:
            return None
        return self.labels[int(self.probabilities.argmax())]


def head_outputs(
    model, n: int, pooled: torch.Tensor | None, hidden: torch.Tensor | None,
    spans: Sequence[tuple[int, int]] | None = None, want_hidden: bool = False,
) -> Outputs:
    """Apply the model's heads.

    ``pooled`` is the document head's pooled feature (mean or last state), or None
    for an empty document (the head then gives its prior, as ``classify_ids`` does).
    ``hidden`` (n, hidden_dim) is needed only for spans and ``want_hidden``.
    """
    head = model.document_head
    probs, labels = None, []
    if head is not None:
        labels = head.labels
        logits = head.linear.bias if n == 0 or pooled is None else head.linear(pooled.to(head.linear.weight.dtype))
        probs = torch.softmax(logits.float(), -1)
    out = Outputs(probs, labels)
    if spans is not None and model.span_head is not None:
        out.spans = torch.softmax(model.span_head(hidden, spans).float(), -1)
    if want_hidden:
        out.hidden = hidden
    return out


def pool_hidden(model, hidden: torch.Tensor) -> torch.Tensor | None:
    """The document head's pooled feature of (n, hidden_dim) states (None: no head or empty)."""
    head = model.document_head
    if head is None or hidden.shape[0] == 0:
        return None
    return head.pool(hidden.unsqueeze(0))[0]
