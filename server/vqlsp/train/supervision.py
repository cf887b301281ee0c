"""The task term of VQ-aware fine-tuning: the heads' own losses on labelled text.

Distillation pulls the VQ student's states toward the dense teacher's, but a
quantizer of 16 or 32 codes a head still drops some of what a classifier head
reads (sentence sentiment, mostly). With ``FinetuneConfig.w_task`` > 0 every step also runs a few labelled
examples (BBC articles with their topic, sentiment pseudo-documents with their
span labels) through the student, under the same position ids jitter as the
rest of the batch, and adds the heads' cross-entropy: the adapters learn to keep
what the heads need, also under the ``stable`` policy's ids.

The heads trained here are only a means. After fine-tuning, both heads are
fitted again, the usual way, on the frozen VQ features (``pipeline._fit_heads``),
so the shipped heads are made exactly as the dense reference's are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.heads import SpanHead
from ..model.transformer import VQTransformer
from .sentiment import SpanDocument
from .tasks import TaskData


@dataclass
class LabelledBatch:
    ids: torch.Tensor  # (n_docs + n_span_docs, T): articles first, then span documents, right-padded
    doc_lengths: torch.Tensor  # (n_docs,)
    doc_targets: torch.Tensor  # (n_docs,)
    spans: list[list[tuple[int, int]]]  # per span document
    span_targets: torch.Tensor  # (all spans,)

    @property
    def n_docs(self) -> int:
        return len(self.doc_lengths)


@dataclass
class LabelledText:
    """The training split of both tasks, sampled a few examples a step."""

    doc_ids: list[list[int]]
    doc_targets: torch.Tensor
    span_docs: list[SpanDocument]

    @classmethod
    def from_tasks(cls, data: TaskData) -> LabelledText:
        docs = [(ids, int(y)) for ids, y in zip(data.doc_ids["train"], data.doc_targets["train"]) if ids]
        spans = [d for d in data.span_docs["train"] if d.spans]
        if not docs or not spans:
            raise ValueError("the task term needs labelled training articles and span documents")
        return cls([ids for ids, _ in docs], torch.tensor([y for _, y in docs]), spans)

    def sample(self, n_docs: int, n_span_docs: int, length: int, generator: torch.Generator) -> LabelledBatch:
        """A seeded batch: ``n_docs`` articles and ``n_span_docs`` span documents cut to ``length`` tokens."""
        pick_docs = torch.randint(len(self.doc_ids), (n_docs,), generator=generator).tolist()
        pick_spans = torch.randint(len(self.span_docs), (n_span_docs,), generator=generator).tolist()
        rows = [self.doc_ids[i][:length] for i in pick_docs]
        spans, targets = [], []
        for i in pick_spans:
            doc = self.span_docs[i]
            kept = [(s, e, y) for (s, e), y in zip(doc.spans, doc.labels) if e <= length]
            rows.append(doc.ids[: max([e for _, e, _ in kept], default=1)])
            spans.append([(s, e) for s, e, _ in kept])
            targets += [y for _, _, y in kept]
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        return LabelledBatch(
            ids,
            torch.tensor([len(r) for r in rows[:n_docs]]),
            self.doc_targets[pick_docs],
            spans,
            torch.tensor(targets, dtype=torch.long),
        )


def task_loss(model: VQTransformer, hidden: torch.Tensor, batch: LabelledBatch) -> torch.Tensor:
    """Mean of the document head's and the span head's cross-entropy on the batch's final states (N, T, D)."""
    if model.document_head is None or model.span_head is None:
        raise ValueError("the task term trains both heads; fit them first (the k-means stage does)")
    device = hidden.device
    doc_logits = model.document_head(hidden[: batch.n_docs], batch.doc_lengths.to(device))
    doc = F.cross_entropy(doc_logits.float(), batch.doc_targets.to(device))
    pooled = [SpanHead.pool(h, s) for h, s in zip(hidden[batch.n_docs :], batch.spans) if s]
    if not pooled:  # every sampled span ran past the window
        return doc
    span_logits = model.span_head.linear(torch.cat(pooled))
    return (doc + F.cross_entropy(span_logits.float(), batch.span_targets.to(device))) / 2
