"""``vqlsp export --onnx``: the exported graph computes the torch model's dense forward.

Parity on tiny random OPT and Llama models (the engine tests' models, with fitted
codebooks, so codes are real choices), at several lengths from one export (the
sequence axis is dynamic), batched, at drifted position ids; and on the default
model (``real_model``).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from tests.engine.models import VARIANTS as ALL_VARIANTS
from tests.engine.models import VOCAB, tiny_model

from vqlsp.model.onnx_export import (
    INT8_FILE,
    DenseGraph,
    GraphError,
    export_onnx,
    graph_files,
    ort_session,
    parity,
    quantize_int8,
    read_metadata,
    run_graph,
)
from vqlsp.model.packed import PackedLinear, pack_linears, packing_available

VARIANTS = {name: spec for name, spec in ALL_VARIANTS.items() if "acm" not in name}  # see the refusal test
TOL = 1e-4
OUTPUTS = ["hidden", "codes", "document_logits"]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """variant -> its exported fp32 graph (one export per variant for the whole module)."""
    root = tmp_path_factory.mktemp("onnx")
    return {variant: export_onnx(tiny_model(variant), root / variant) for variant in VARIANTS}


def inputs(batch: int, tokens: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, tokens), generator=g)
    pos = torch.arange(tokens).repeat(batch, 1)
    pos[1:] = pos[1:] * 3 // 2 + 1  # drifted ids, as the stable policy leaves them: repeats and gaps
    return ids, pos


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_graph_equals_the_torch_forward_at_any_length(graphs, variant):
    model = tiny_model(variant)
    session = ort_session(graphs[variant])
    assert [o.name for o in session.get_outputs()] == OUTPUTS
    for tokens in (1, 2, 7, 130):
        ids, pos = inputs(2, tokens, seed=tokens)
        with torch.no_grad():
            ref = DenseGraph(model)(ids, pos)
        got = run_graph(session, ids, pos, OUTPUTS)
        assert got[0].shape == (2, tokens, model.hidden_dim)
        assert got[1].shape == (2, tokens, model.cfg.depth, model.cfg.n_heads)
        torch.testing.assert_close(torch.from_numpy(got[0]), ref[0], atol=TOL, rtol=0)
        assert np.array_equal(got[1], ref[1].numpy())
        torch.testing.assert_close(torch.from_numpy(got[2]), ref[2], atol=TOL, rtol=0)


def test_graph_carries_labels_and_the_models_fingerprint(graphs):
    meta = read_metadata(graphs["llama"])
    assert meta["vqlsp.depth"] == "2" and meta["vqlsp.arch"] == "llama"
    assert '"labels": ["a", "b", "c"]' in meta["vqlsp.document_head"]
    assert meta["vqlsp.fingerprint"] != read_metadata(graphs["opt"])["vqlsp.fingerprint"]


def test_a_model_with_packed_linears_exports_the_same_graph(tmp_path):
    if not packing_available():
        pytest.skip("this PyTorch has no oneDNN packing")
    model = pack_linears(copy.deepcopy(tiny_model("llama")))
    assert any(isinstance(m, PackedLinear) for m in model.modules())
    check = parity(model, export_onnx(model, tmp_path))
    assert check["max_abs_hidden_diff"] < TOL and check["codes_differ_share"] == 0
    assert check["max_abs_prob_diff"] < TOL


def test_int8_graph_stores_int8_weights_and_stays_near_fp32(graphs, tmp_path):
    fp32 = graphs["llama"]
    int8 = quantize_int8(fp32, tmp_path / INT8_FILE)
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
    # the attention products (activation x activation) stay float
    assert "MatMul" in ops
    ids, pos = inputs(1, 40, seed=3)
    (h32,), (h8,) = (run_graph(ort_session(g), ids, pos) for g in (fp32, int8))
    assert h8.shape == h32.shape and not np.array_equal(h8, h32)
    relative = np.linalg.norm(h8 - h32) / np.linalg.norm(h32)
    assert relative < 0.2


def test_graph_files_exports_quantizes_and_refuses_another_models_graph(tmp_path):
    model = tiny_model("opt")
    files = graph_files(tmp_path / "g", model)
    assert files["fp32"].is_file() and files["int8"].is_file()
    files["int8"].unlink()
    assert graph_files(tmp_path / "g")["int8"].is_file()  # quantized again from the fp32 graph
    with pytest.raises(GraphError, match="another model"):
        graph_files(tmp_path / "g", tiny_model("opt", seed=1))
    with pytest.raises(GraphError, match="no model.onnx"):
        graph_files(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(GraphError, match="not a readable ONNX graph"):
        graph_files(tmp_path / "bad", model)


@pytest.mark.real_model
def test_default_model_graph_equals_torch(default_graphs, default_model):
    check = parity(default_model, default_graphs["fp32"], tokens=96)
    assert check["codes_differ_share"] == 0
    assert check["max_abs_prob_diff"] < 1e-4
    assert check["max_abs_hidden_diff"] < 1e-2  # of final states up to ~30 in size (float32 summation order)


def test_an_acm_model_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(GraphError, match="ACM"):
        export_onnx(tiny_model("llama-acm"), tmp_path)
    assert not any(tmp_path.iterdir())
