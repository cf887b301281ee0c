"""``vqlsp eval --onnx``: the heads' test accuracy on the exported graphs beside the torch model."""

from __future__ import annotations

import random

import pytest
import torch
from tests.engine.models import VOCAB, tiny_model

from vqlsp.engine.baselines import DenseStrategy
from vqlsp.model.onnx_export import graph_files
from vqlsp.train.onnx_accuracy import onnx_accuracy
from vqlsp.train.sentiment import SpanDocument
from vqlsp.train.tasks import TaskData


def served_labels(model, ids, spans=None) -> list[int]:
    """The labels the server would give (a dense re-run, the heads as the engine applies them)."""
    out = DenseStrategy(model, ids, "exact").outputs(spans)
    if spans is None:
        return [int(out.probabilities.argmax())]
    return out.spans.argmax(-1).tolist()


def test_fp32_graph_scores_what_torch_scores_and_int8_is_measured(tmp_path):
    model = tiny_model("llama")
    rng = random.Random(0)
    articles = [[rng.randrange(VOCAB) for _ in range(rng.randrange(1, 50))] for _ in range(12)] + [[]]
    docs = [SpanDocument([rng.randrange(VOCAB) for _ in range(30)], [(0, 10), (10, 30)], [0, 0]) for _ in range(5)]
    # targets: the served labels, except the first article's and the first span's
    doc_targets = [served_labels(model, ids)[0] if ids else int(model.document_head.linear.bias.argmax())
                   for ids in articles]
    doc_targets[0] = (doc_targets[0] + 1) % 3
    for d in docs:
        d.labels[:] = served_labels(model, d.ids, d.spans)
    docs[0].labels[0] = 1 - docs[0].labels[0]
    data = TaskData(["a", "b", "c"], {"test": articles}, {"test": torch.tensor(doc_targets)}, {"test": docs})

    result = onnx_accuracy(model, data, graph_files(tmp_path, model), progress=False)
    assert result["test_examples"] == {"document": 13, "span": 10}
    assert result["torch"]["document"] == {"acc": pytest.approx(12 / 13), "same_label_as_torch": 1.0}
    assert result["torch"]["span"] == {"acc": pytest.approx(9 / 10), "same_label_as_torch": 1.0}
    assert result["fp32"] == result["torch"]
    for task in ("document", "span"):
        assert 0 <= result["int8"][task]["acc"] <= 1 and 0 <= result["int8"][task]["same_label_as_torch"] <= 1
