"""The model's dense forward as an ONNX graph, for ONNX Runtime (``vqlsp export --onnx DIR``).

This is what a user who does not want an incremental engine would run instead: the
same VQ model as the server computes it, re-run from scratch on every edit. The
benchmark (``engine/ort_baseline.py``) measures it beside the engine, in fp32 and
with int8 dynamic quantization (``quantize_int8``).

The graph (``model.onnx``, opset ``OPSET``), both axes dynamic::

    inputs   input_ids        int64 (batch, tokens)
             position_ids     int64 (batch, tokens)   explicit: the stable policy's ids may repeat or skip
    outputs  hidden           float32 (batch, tokens, hidden_dim)   final states after norm_f (and
                                                      project_out) at the exit depth: the heads' input
             codes            int64 (batch, tokens, depth, heads)   every layer's VQ codes (VQ on)
             document_logits  float32 (batch, labels)  the document head over all tokens of each row
                                                      (with a document head; rows must be unpadded)

Span labels are the span head applied to the mean of a span's ``hidden`` rows (the
span head is linear, so nothing of it needs to be in the graph). The labels, the
pooling, the depth and a fingerprint of the model are written into the graph's
metadata (``metadata_props``), so a graph left in a directory is not run for
another model (``graph_files``). ``ort_session`` / ``run_graph`` run a graph on ONNX
Runtime's CPU provider; ``parity`` compares one with the torch model.

Export uses the TorchScript exporter (``dynamo=False``): it records the branches the
model takes in Python, where ``torch.export`` would need them rewritten.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .heads import DocumentHead, SpanHead
from .packed import PackedLinear
from .transformer import VQTransformer

OPSET = 17
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUTS = ("input_ids", "position_ids")


class GraphError(ValueError):
    """A directory's graph is missing, unreadable or exported from another model."""


class DenseGraph(nn.Module):
    """``VQTransformer.forward`` with the outputs the exported graph has (see the module doc)."""

    def __init__(self, model: VQTransformer):
        super().__init__()
        self.model = model

    def output_names(self) -> list[str]:
        names = ["hidden"]
        if self.model.cfg.vq.enabled:
            names.append("codes")
        if self.model.document_head is not None:
            names.append("document_logits")
        return names

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, position_ids)
        outputs = [out.hidden]
        if out.codes:
            outputs.append(torch.stack(out.codes, dim=2))  # (B, T, depth, H)
        if self.model.document_head is not None:
            outputs.append(self.model.document_head(out.hidden))
        return tuple(outputs)


def plain_copy(model: VQTransformer) -> VQTransformer:
    """The model with ``nn.Linear`` layers where it has oneDNN-packed ones (``packed.py``), sharing
    its tensors: packed weights exist only inside PyTorch, an exporter cannot read them."""
    if not any(isinstance(m, PackedLinear) for m in model.modules()):
        return model
    copy = VQTransformer(model.cfg)
    doc, span = model.document_head, model.span_head
    copy.set_heads(
        DocumentHead(model.hidden_dim, doc.labels, doc.pooling) if doc is not None else None,
        SpanHead(model.hidden_dim, span.labels, span.unit) if span is not None else None,
    )
    copy.load_state_dict(model.state_dict(), assign=True)
    return copy.to(model.device).eval()


def fingerprint(model: VQTransformer) -> str:
    """A hash of the small tensors that differ between trained checkpoints (codebooks, heads),
    so that a graph left in a directory is not taken for another model's."""
    digest = hashlib.sha256()
    tensors = [b.vq.codebook for b in model.blocks[: model.cfg.depth]]
    tensors += [p for head in (model.document_head, model.span_head) if head is not None for p in head.parameters()]
    for t in tensors:
        digest.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def metadata(model: VQTransformer) -> dict[str, str]:
    """What a caller of the graph needs besides the tensors (labels, pooling, depth), and whose it is."""
    cfg, doc, span = model.cfg, model.document_head, model.span_head
    return {
        "vqlsp.fingerprint": fingerprint(model),
        "vqlsp.arch": cfg.arch,
        "vqlsp.depth": str(cfg.depth),
        "vqlsp.vq": json.dumps({"enabled": cfg.vq.enabled, "codebook_size": cfg.vq.codebook_size}),
        "vqlsp.document_head": json.dumps(doc.config() if doc is not None else None),
        "vqlsp.span_head": json.dumps(span.config() if span is not None else None),
    }


def export_onnx(model: VQTransformer, directory: str | Path, *, example_tokens: int = 8) -> Path:
    """Write the model's dense forward to ``directory/model.onnx``; returns that path.

    Traced on the CPU in float32 with an ``example_tokens``-long example (> 1: a one-token
    example would trace attention without its causal mask).
    """
    import onnx

    if example_tokens < 2:
        raise ValueError("the example must have at least 2 tokens")
    if any(type(m).__name__ == "Q4Linear" for m in model.modules()):
        raise GraphError("a model with 4-bit weights has no ONNX export (its matmul is native code); "
                         "load it with weights='fp32'")
    if model.cfg.acm is not None:  # tracing would freeze the example's routing into the graph
        raise GraphError("an ACM model has no ONNX export: which learners a token runs depends on its "
                         "values, which a traced graph cannot follow; export the model without ACM")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FP32_FILE
    graph = DenseGraph(plain_copy(model)).cpu().float().eval()
    ids = torch.arange(example_tokens)[None] % model.cfg.vocab_size
    pos = torch.arange(example_tokens)[None]
    names = graph.output_names()
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, *names)}
    axes["document_logits"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter (see the module doc): its deprecation notice is not the user's concern
        warnings.simplefilter("ignore", (DeprecationWarning, torch.jit.TracerWarning))
        # code lookups index with codes, never negative: the exporter's caveat does not apply
        warnings.filterwarnings("ignore", message="Exporting aten::index operator", category=UserWarning)
        torch.onnx.export(
            graph, (ids, pos), str(path), input_names=list(INPUTS), output_names=names,
            dynamic_axes={k: v for k, v in axes.items() if k in (*INPUTS, *names)},
            opset_version=OPSET, dynamo=False,
        )
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, metadata(model))
    onnx.save(proto, str(path))
    return path


def quantize_int8(fp32_path: str | Path, int8_path: str | Path | None = None) -> Path:
    """int8 dynamic quantization of an exported graph (``onnxruntime.quantization.quantize_dynamic``):
    weights of the matrix products with a constant operand stored as int8, activations quantized
    per call; written beside it as ``model.int8.onnx`` unless told otherwise."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_path = Path(fp32_path)
    int8_path = Path(int8_path) if int8_path else fp32_path.with_name(INT8_FILE)
    quantize_dynamic(
        fp32_path, int8_path, weight_type=QuantType.QInt8,
        extra_options={"MatMulConstBOnly": True},  # attention's activation x activation products stay fp32
    )
    return int8_path


def ort_session(graph: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session on ``threads`` intra-op threads (one inter-op thread: the graph is
    a chain of layers), all graph optimizations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def run_graph(session, ids: torch.Tensor, pos: torch.Tensor, outputs: Sequence[str] = ("hidden",)) -> list:
    """The graph's ``outputs`` (numpy arrays) for ids and position ids (B, T)."""
    feeds = {"input_ids": ids.cpu().numpy(), "position_ids": pos.cpu().numpy()}
    return session.run(list(outputs), feeds)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of a graph file (raises ``GraphError`` when it is not one)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as exc:
        raise GraphError(f"{path} is not a readable ONNX graph: {exc}") from None
    return {p.key: p.value for p in proto.metadata_props}


def graph_files(directory: str | Path, model: VQTransformer | None = None) -> dict[str, Path]:
    """The fp32 and int8 graphs in ``directory`` ({"fp32": ..., "int8": ...}).

    With ``model``: exports the fp32 graph if it is missing and checks that one found
    there was exported from this model (``metadata``). The
    int8 graph is quantized from the fp32 one if it is missing.
    """
    directory = Path(directory)
    fp32 = directory / FP32_FILE
    if not fp32.is_file():
        if model is None:
            raise GraphError(f"{directory} holds no {FP32_FILE} (write one with vqlsp export --onnx {directory})")
        export_onnx(model, directory)
    elif model is not None:
        found, expected = read_metadata(fp32), metadata(model)
        if any(found.get(k) != v for k, v in expected.items()):
            raise GraphError(f"{fp32} was exported from another model; export this one to a new directory")
    int8 = directory / INT8_FILE
    if not int8.is_file():
        quantize_int8(fp32, int8)
    return {"fp32": fp32, "int8": int8}


@torch.no_grad()
def parity(model: VQTransformer, graph: str | Path, tokens: int = 64, seed: int = 0) -> dict:
    """The graph against the torch model on ``tokens`` random ids at drifted (repeated, skipping)
    position ids: the largest output differences, and the share of codes that differ."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.cfg.vocab_size, (1, tokens), generator=g)
    pos = (torch.arange(tokens) * 3 // 2)[None]
    graph_module = DenseGraph(plain_copy(model))
    names = graph_module.output_names()
    ref = dict(zip(names, graph_module(ids.to(model.device), pos.to(model.device))))
    got = dict(zip(names, run_graph(ort_session(graph), ids, pos, names)))
    out = {"tokens": tokens, "max_abs_hidden_diff": _max_diff(got["hidden"], ref["hidden"])}
    if "codes" in ref:
        out["codes_differ_share"] = float((torch.from_numpy(got["codes"]) != ref["codes"].cpu()).float().mean())
    if "document_logits" in ref:
        p_got = torch.from_numpy(got["document_logits"]).softmax(-1)
        out["max_abs_prob_diff"] = _max_diff(p_got.numpy(), ref["document_logits"].float().softmax(-1))
    return out


def _max_diff(array, tensor: torch.Tensor) -> float:
    return float((torch.from_numpy(array) - tensor.float().cpu()).abs().max())
