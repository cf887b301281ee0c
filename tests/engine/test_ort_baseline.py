"""The ONNX Runtime dense baseline has the session's interface and computes what torch's dense re-run does."""

from __future__ import annotations

import pytest
import torch
from tests.engine.models import VOCAB, tiny_model

from vqlsp.engine.baselines import DenseStrategy
from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.engine.ort_baseline import OrtDenseStrategy
from vqlsp.model.onnx_export import export_onnx

TOL = 1e-4


@pytest.mark.parametrize("policy", ["stable", "exact"])
@pytest.mark.parametrize("variant", ["llama", "opt"])
def test_ort_dense_equals_torch_dense_along_edits(variant, policy, tmp_path):
    model = tiny_model(variant)
    graph = export_onnx(model, tmp_path)
    ids = torch.randint(0, VOCAB, (60,), generator=torch.Generator().manual_seed(2)).tolist()
    dense = DenseStrategy(model, ids, policy)
    ort = OrtDenseStrategy(model, ids, policy, graph=graph, threads=1)
    calls = [[TokenEdit(10, 10, (1, 2))], [TokenEdit(0, 3)], [TokenEdit(30, 31, (9,)), TokenEdit(50, 50, (4,))],
             [TokenEdit(0, 59)], [TokenEdit(0, 1)], [TokenEdit(0, 0, (5, 6, 7))]]
    for call in calls:
        ids = apply_edits(ids, call)
        d, o = dense.apply(call), ort.apply(call)
        assert ort.token_ids == ids and torch.equal(ort.position_ids, dense.position_ids)
        assert o.total_ops == d.total_ops and o.rows_changed == d.rows_changed and o.ms > 0
        spans = [(0, len(ids))] if ids else []
        got, ref = ort.outputs(spans, hidden=True), dense.outputs(spans, hidden=True)
        torch.testing.assert_close(got.probabilities, ref.probabilities, atol=TOL, rtol=0)
        torch.testing.assert_close(got.hidden, ref.hidden, atol=TOL, rtol=0)
        if spans:
            torch.testing.assert_close(got.spans, ref.spans, atol=TOL, rtol=0)
