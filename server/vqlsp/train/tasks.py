"""The two tasks the default model's heads learn, and fitting both heads on frozen features.

* document head: BBC News topic (5 classes) from the first ``doc_tokens`` tokens
  of each article (``data.bbc_news``);
* span head: sentence sentiment (negative / positive) of snippets packed into
  pseudo-documents (``sentiment.pack_documents``).

``DataScale`` caps how much training data is read (the CPU scale); validation
and test sets are always the full splits, so metrics at every scale are
comparable.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from ..model.heads import DocumentHead, SpanHead
from ..model.transformer import VQTransformer
from .data import bbc_labels, bbc_news
from .features import document_features, span_features
from .heads import accuracy, fit_logistic
from .sentiment import LABELS as SENTIMENT_LABELS
from .sentiment import SpanDocument, pack_documents, sentiment_snippets

SPLITS = ("train", "validation", "test")


@dataclass
class DataScale:
    doc_tokens: int = 256  # tokens read from the start of each article
    doc_train: int | None = None  # at most this many BBC training articles (None: all)
    span_train: int | None = None  # at most this many training snippets (None: all)
    span_doc_tokens: int = 192  # length of a pseudo-document of snippets
    seed: int = 0  # which capped subset, and the order snippets are packed in
    eval_cap: int | None = None  # smoke tests only: also cap validation and test (None: full splits)

    @classmethod
    def named(cls, name: str) -> DataScale:
        if name == "cpu":
            return cls(doc_train=400, span_train=3000)
        if name == "gpu":
            return cls()
        raise ValueError(f"unknown scale {name!r}; choose cpu or gpu")


@dataclass
class TaskData:
    doc_labels: list[str]
    doc_ids: dict[str, list[list[int]]]
    doc_targets: dict[str, torch.Tensor]
    span_docs: dict[str, list[SpanDocument]]
    scale: DataScale = field(default_factory=DataScale)

    def describe(self) -> dict:
        return {
            "document": {s: len(self.doc_ids[s]) for s in self.doc_ids},
            "span": {s: sum(len(d.spans) for d in self.span_docs[s]) for s in self.span_docs},
            "scale": asdict(self.scale),
        }


def capped(items: list, limit: int | None, seed: int) -> list:
    if limit is None or limit >= len(items):
        return items
    g = torch.Generator().manual_seed(seed)
    keep = sorted(torch.randperm(len(items), generator=g)[:limit].tolist())
    return [items[i] for i in keep]


def load_tasks(tokenizer, scale: DataScale, splits: Sequence[str] = SPLITS) -> TaskData:
    labels = bbc_labels()
    doc_ids, doc_targets, span_docs = {}, {}, {}
    for split in splits:
        articles = bbc_news(split)  # type: ignore[arg-type]
        snippets = sentiment_snippets(split)  # type: ignore[arg-type]
        if split == "train":
            articles = capped(articles, scale.doc_train, scale.seed)
            snippets = capped(snippets, scale.span_train, scale.seed)
        else:
            articles = capped(articles, scale.eval_cap, scale.seed)
            snippets = capped(snippets, scale.eval_cap, scale.seed)
        doc_ids[split] = [tokenizer.encode(e.text).ids[: scale.doc_tokens] for e in articles]
        doc_targets[split] = torch.tensor([labels.index(e.label) for e in articles])
        span_docs[split] = pack_documents(snippets, tokenizer, max_tokens=scale.span_doc_tokens, seed=scale.seed)
    return TaskData(labels, doc_ids, doc_targets, span_docs, scale)


@dataclass
class Features:
    """Frozen features of one model: per split, {depth: {pooling: X}} and span ({depth: X}, y)."""

    doc: dict[str, dict[int, dict[str, torch.Tensor]]]
    span: dict[str, tuple[dict[int, torch.Tensor], torch.Tensor]]


def extract(
    model: VQTransformer, data: TaskData, depths: Sequence[int], *, vq: bool, splits: Sequence[str] = SPLITS,
    progress: bool = True,
) -> Features:
    tag = "vq" if vq else "dense"
    doc = {
        s: document_features(model, data.doc_ids[s], depths, vq=vq, progress=progress, desc=f"{tag} BBC {s}")
        for s in splits
    }
    span = {
        s: span_features(model, data.span_docs[s], depths, vq=vq, progress=progress, desc=f"{tag} sentiment {s}")
        for s in splits
    }
    return Features(doc, span)


@dataclass
class HeadResult:
    head: DocumentHead | SpanHead
    metrics: dict


def fit_document_head(features: Features, data: TaskData, depth: int, dim: int) -> HeadResult:
    """Logistic regression on the train split; pooling and L2 by validation accuracy."""
    best = None
    for pooling, x_train in features.doc["train"][depth].items():
        fit = fit_logistic(
            x_train, data.doc_targets["train"], features.doc["validation"][depth][pooling],
            data.doc_targets["validation"], len(data.doc_labels),
        )
        if best is None or fit.val_acc > best[1].val_acc:
            best = (pooling, fit)
    assert best is not None
    pooling, fit = best
    head = DocumentHead(dim, data.doc_labels, pooling)  # type: ignore[arg-type]
    head.linear.weight.data, head.linear.bias.data = fit.weight.clone(), fit.bias.clone()
    test = accuracy(head, features.doc["test"][depth][pooling], data.doc_targets["test"])
    return HeadResult(head, {"pooling": pooling, "l2": fit.l2, "val_acc": fit.val_acc, "test_acc": test})


def fit_span_head(features: Features, depth: int, dim: int) -> HeadResult:
    (x_train, y_train), (x_val, y_val) = (
        (features.span[s][0][depth], features.span[s][1]) for s in ("train", "validation")
    )
    fit = fit_logistic(x_train, y_train, x_val, y_val, len(SENTIMENT_LABELS))
    head = SpanHead(dim, SENTIMENT_LABELS, "sentence")
    head.linear.weight.data, head.linear.bias.data = fit.weight.clone(), fit.bias.clone()
    x_test, y_test = features.span["test"][0][depth], features.span["test"][1]
    return HeadResult(head, {"l2": fit.l2, "val_acc": fit.val_acc, "test_acc": accuracy(head, x_test, y_test)})


def head_test_accuracy(model: VQTransformer, features: Features, data: TaskData, depth: int) -> dict[str, float]:
    """Test accuracy of the heads a model already carries, on its features at ``depth``."""
    out = {}
    if model.document_head is not None:
        x = features.doc["test"][depth][model.document_head.pooling]
        out["document"] = accuracy(copy.deepcopy(model.document_head).cpu().float(), x, data.doc_targets["test"])
    if model.span_head is not None:
        x, y = features.span["test"][0][depth], features.span["test"][1]
        out["span"] = accuracy(copy.deepcopy(model.span_head).cpu().float(), x, y)
    return out
