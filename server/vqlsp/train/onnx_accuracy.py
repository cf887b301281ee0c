"""Test-set accuracy of the exported graphs beside the torch model (``vqlsp eval --onnx DIR``).

What int8 dynamic quantization costs a user who runs the graph on ONNX Runtime
instead of the engine: the checkpoint's own heads on the features of the torch
model, the fp32 graph and the int8 graph (``model/onnx_export.py``), on the test
splits ``vqlsp eval`` reads (BBC News topic from the first 256 tokens of each
article; sentence sentiment in packed pseudo-documents). Each sequence runs alone
(no padding) at exact position ids, and the heads are applied as the server applies
them (``engine.results.head_outputs``). Besides each one's accuracy: how often its
labels equal the torch model's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from ..engine.results import head_outputs, pool_hidden
from ..model.onnx_export import ort_session, run_graph
from ..model.transformer import VQTransformer
from .tasks import TaskData

Runner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # ids, position ids (1, T) -> hidden (T, D)


def torch_runner(model: VQTransformer) -> Runner:
    return lambda ids, pos: model(ids, pos).hidden[0]


def graph_runner(graph: str | Path, threads: int) -> Runner:
    session = ort_session(graph, threads)
    return lambda ids, pos: torch.from_numpy(run_graph(session, ids, pos)[0][0])


@torch.no_grad()
def predictions(model: VQTransformer, run: Runner, data: TaskData, *, progress: bool = True,
                desc: str = "") -> dict[str, torch.Tensor]:
    """Predicted labels on the test splits: {"document": (articles,), "span": (sentences,)}."""
    doc, span = [], []
    for ids in tqdm(data.doc_ids["test"], desc=f"{desc} BBC test", disable=not progress):
        out = _outputs(model, run, ids, None)
        doc.append(int(out.probabilities.argmax()))
    for d in tqdm(data.span_docs["test"], desc=f"{desc} sentiment test", disable=not progress):
        span.extend(_outputs(model, run, d.ids, d.spans).spans.argmax(-1).tolist())
    return {"document": torch.tensor(doc), "span": torch.tensor(span)}


def _outputs(model: VQTransformer, run: Runner, ids: Sequence[int], spans):
    n = len(ids)
    hidden = run(torch.tensor([ids]), torch.arange(n)[None]) if n else torch.zeros(0, model.hidden_dim)
    return head_outputs(model, n, pool_hidden(model, hidden), hidden, spans)


def targets(data: TaskData) -> dict[str, torch.Tensor]:
    return {
        "document": data.doc_targets["test"],
        "span": torch.tensor([label for d in data.span_docs["test"] for label in d.labels]),
    }


def onnx_accuracy(model: VQTransformer, data: TaskData, graphs: dict[str, Path], *, threads: int = 1,
                  progress: bool = True) -> dict:
    """{"torch" | "fp32" | "int8": {task: {"acc", "same_label_as_torch"}}} on the test splits."""
    if model.document_head is None or model.span_head is None:
        raise ValueError("the model needs a document head and a span head to be evaluated")
    if model.device.type != "cpu":
        raise ValueError("the graphs run on the CPU: load the model there too")
    runners = {"torch": torch_runner(model)} | {name: graph_runner(path, threads) for name, path in graphs.items()}
    truth = targets(data)
    preds = {name: predictions(model, run, data, progress=progress, desc=name) for name, run in runners.items()}
    result: dict = {}
    for name, by_task in preds.items():
        result[name] = {
            task: {
                "acc": (p == truth[task]).float().mean().item(),
                "same_label_as_torch": (p == preds["torch"][task]).float().mean().item(),
            }
            for task, p in by_task.items()
        }
    result["test_examples"] = {task: len(t) for task, t in truth.items()}
    return result
