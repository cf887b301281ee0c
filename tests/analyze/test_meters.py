"""The compute meters on tiny models: activations, the instrumented pass, ACM learners, reuse."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from tests.analyze.fakes import FakeAcmMlp, with_fake_acm
from tests.engine.models import tiny_model

from vqlsp.analyze.activations import EPSILONS, ActivationStats
from vqlsp.analyze.features import document_pass, span_pass
from vqlsp.analyze.reuse import edit_costs, replacement, sample_positions
from vqlsp.analyze.trace import has_acm, trace
from vqlsp.engine.edits import TokenEdit
from vqlsp.engine.session import IncrementalSession
from vqlsp.train.features import hidden_by_depth
from vqlsp.train.sentiment import SpanDocument

IDS = [int(t) for t in torch.randint(0, 256, (40,), generator=torch.Generator().manual_seed(1))]


def test_activation_counts_zeros_and_near_zeros():
    stats = ActivationStats("swiglu", 1)
    h = torch.tensor([[[0.0, 5e-4, 5e-3, 5e-2, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]]])  # (1, 2, 5)
    mask = torch.tensor([[True, False]])  # the second row is padding: not counted
    active = stats.add(0, h, mask)
    layer = stats.summary()["layers"][0]
    assert layer["values"] == 5
    assert layer["zero_share"] == pytest.approx(0.2)
    assert [layer["near_zero_share"][str(e)] for e in EPSILONS] == pytest.approx([0.4, 0.6, 0.8])
    assert active[0, 0].item() == pytest.approx(0.4)  # above the main threshold (1e-2): 5e-2 and 1.0
    assert sum(layer["log10_abs_hist"]) == 4  # the non-zero values


@pytest.mark.parametrize("variant", ["llama", "opt"])
def test_trace_states_equal_the_feature_pass_and_count_every_activation(variant):
    model = tiny_model(variant)
    ids = torch.tensor([IDS])
    stats = ActivationStats(model.cfg.mlp, model.cfg.n_layers)
    tr = trace(model, ids, depths=[1, 2], activations=stats)
    ref = hidden_by_depth(model, ids, [1, 2], vq=True)
    for d in (1, 2):
        torch.testing.assert_close(tr.hidden[d], ref[d])
    assert tr.learners is None and not has_acm(model)
    assert tr.active.shape == (2, 1, len(IDS))
    summary = stats.summary()
    assert [x["values"] for x in summary["layers"]] == [len(IDS) * model.cfg.d_ff] * 2
    if variant == "opt":  # ReLU: about half the units of a random model are exactly zero
        assert 0.2 < summary["layers"][0]["zero_share"] < 0.8


def test_acm_meter_reads_learners_run_per_row_and_layer():
    model = with_fake_acm(tiny_model("llama"))
    assert has_acm(model)
    ids = torch.tensor([IDS])
    tr = trace(model, ids, depths=[2])
    assert tr.learners.shape == (2, 1, len(IDS))
    # the count is a function of each layer's MLP input: recompute it from the states
    x = model.embed_rows(ids, torch.arange(len(IDS))[None])
    pos = model.positional(torch.arange(len(IDS))[None])
    for layer, block in enumerate(model.blocks):
        x, _, _ = block(x, pos, True)
        assert torch.equal(tr.learners[layer], block.mlp.last_learners.float())
    assert set(tr.learners.unique().tolist()) <= {1.0, 2.0, 3.0}


def test_acm_meter_refuses_a_model_where_only_some_mlps_count():
    model = with_fake_acm(tiny_model("llama"))
    model.blocks[1].mlp = model.blocks[1].mlp.inner
    with pytest.raises(ValueError, match="only some"):
        trace(model, torch.tensor([IDS]), depths=[2])


def test_acm_meter_refuses_a_count_of_the_wrong_shape():
    model = with_fake_acm(tiny_model("llama"))

    class Wrong(FakeAcmMlp):
        def forward(self, x):
            out = super().forward(x)
            self.last_learners = self.last_learners.flatten()[:3]
            return out

    model.blocks[0].mlp = Wrong(model.blocks[0].mlp.inner)
    with pytest.raises(ValueError, match="one count per row"):
        trace(model, torch.tensor([IDS]), depths=[2])


def test_passes_pool_documents_and_spans():
    plain = document_pass(tiny_model("llama"), [IDS, IDS[:10]], activations=ActivationStats("swiglu", 2))
    assert {d: tuple(v.shape) for d, v in plain.stacked().items()} == {1: (2, 64), 2: (2, 64)}
    assert [len(a) for a in plain.active] == [40, 10] and plain.learners == []
    alone = document_pass(tiny_model("llama"), [IDS[:10]], activations=ActivationStats("swiglu", 2))
    for d, f in alone.stacked().items():  # batched beside a longer sequence (right-padded) = alone
        torch.testing.assert_close(plain.stacked()[d][1], f[0])
    np.testing.assert_allclose(plain.active[1], alone.active[0])
    model = with_fake_acm(tiny_model("llama"))
    docs = document_pass(model, [IDS, IDS[:10]], activations=ActivationStats("swiglu", 2))
    assert docs.active == []  # an ACM MLP has no single down projection to read
    assert [len(a) for a in docs.learners] == [40, 10]
    doc = SpanDocument(IDS, [(0, 5), (5, 12)], [0, 1])
    spans, labels, where = span_pass(model, [doc])
    assert labels.tolist() == [0, 1] and where == [(0, 0, 5), (0, 5, 12)]
    hidden = hidden_by_depth(model, torch.tensor([IDS]), [2], vq=True)[2][0]
    torch.testing.assert_close(spans.stacked()[2][1], hidden[5:12].mean(0))
    assert [len(x) for x in spans.learners] == [5, 7]


def test_edit_costs_measure_the_engine_and_leave_the_tokens_as_they_were():
    model = tiny_model("llama")
    session = IncrementalSession(model, IDS)
    before = session.outputs(hidden=True).hidden
    costs = edit_costs(session, [0, 20, 39], seed=3)
    assert session.token_ids == IDS
    torch.testing.assert_close(session.outputs(hidden=True).hidden, before, rtol=0, atol=0)
    for cost in costs:
        assert len(cost.rows_changed) == model.cfg.depth
        assert cost.rows_changed[0] >= 1  # the edited row itself
        assert 0 < cost.share <= 1
        assert cost.rows_after == len(IDS) - cost.position
    assert costs[-1].rows_changed == (1,) * model.cfg.depth  # the last token: nothing after it
    with pytest.raises(ValueError, match="outside"):
        edit_costs(session, [40])


def test_replacement_and_positions():
    rng = random.Random(0)
    ids = [5, 5, 7]
    assert replacement(ids, 0, rng) == 7
    assert replacement([4, 4], 0, rng) == 5
    positions = sample_positions(10, 110, 8, rng)
    assert len(positions) == 8 and all(10 <= p < 110 for p in positions)
    assert sample_positions(3, 6, 8, rng) == [3, 4, 5]


@pytest.mark.parametrize("variant", ["llama", "opt"])
def test_engine_counts_each_rows_work_and_acm_learners(variant):
    """UpdateStats.row_work sums to rows_changed; an ACM model's learners per row on a first pass
    equal a dense pass's, and after an edit they are counted for the recomputed rows only."""
    model = with_fake_acm(tiny_model(variant))
    session = IncrementalSession(model, IDS)
    first = session.last_stats
    assert first.row_work.tolist() == [model.cfg.depth] * len(IDS)
    dense = trace(model, torch.tensor([IDS]), depths=[model.cfg.depth]).learners[:, 0].sum(0)
    torch.testing.assert_close(first.row_learners, dense)
    stats = session.apply([TokenEdit(20, 21, (IDS[3],))])
    assert int(stats.row_work.sum()) == sum(stats.rows_changed)
    assert stats.row_work[:20].eq(0).all() and stats.row_work[20] == model.cfg.depth
    after = trace(model, torch.tensor([session.token_ids]), depths=[model.cfg.depth]).learners[:, 0]
    recomputed = stats.row_work > 0
    assert (stats.row_learners[~recomputed] == 0).all()
    assert (stats.row_learners[recomputed] <= after.sum(0)[recomputed] + 1e-6).all()
    assert np.isclose(float(stats.row_learners[20]), float(after[:, 20].sum()))


def test_plain_models_count_no_learners():
    session = IncrementalSession(tiny_model("llama"), IDS)
    assert session.last_stats.row_learners is None


@pytest.mark.parametrize("variant", ["llama", "opt"])
def test_a_fork_updates_like_the_session_and_leaves_it_alone(variant):
    model = tiny_model(variant)
    session = IncrementalSession(model, IDS)
    before = session.outputs(hidden=True).hidden
    twin = session.fork()
    edits = [TokenEdit(5, 7, (IDS[30],)), TokenEdit(12, 12, (1, 2))]
    twin.apply(edits)
    session.apply([])  # the original still works, and still holds the old tokens
    assert session.token_ids == IDS
    torch.testing.assert_close(session.outputs(hidden=True).hidden, before, rtol=0, atol=0)
    dense = model(torch.tensor([twin.token_ids]), twin.position_ids[None]).hidden[0]  # the invariant
    torch.testing.assert_close(twin.outputs(hidden=True).hidden, dense, rtol=1e-4, atol=1e-4)
