"""The engine's op count with ACM MLPs: a changed row pays its gate and only the learners it ran."""

from __future__ import annotations

import argparse

import torch

from vqlsp.bench import acm_bench
from vqlsp.engine.baselines import DenseStrategy
from vqlsp.engine.edits import TokenEdit
from vqlsp.engine.ops import CostModel
from vqlsp.engine.session import IncrementalSession
from vqlsp.model.acm import acm_modules, set_threshold

from .models import VOCAB, dense, tiny_model


def test_mlp_ops_are_the_learners_each_row_ran():
    model = tiny_model("llama-acm")
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(1)).tolist()
    session = IncrementalSession(model, ids, "exact")
    cost = CostModel.of(model.cfg)
    stats = session.last_stats
    learners = [session.learners(layer) for layer in range(model.cfg.depth)]
    ref = dense(model, ids, session.position_ids)
    assert all(torch.equal(a, b[0]) for a, b in zip(learners, ref.learners))
    ran = sum(int(t.sum()) for t in learners)
    assert stats.learners == [int(t.sum()) for t in learners]
    assert stats.ops["mlp"] == ran * cost.learner + 40 * model.cfg.depth * cost.gate
    assert ran < 40 * model.cfg.depth * 4, "some rows must run fewer than all learners"
    # an edit charges only the rows it changed, each for its own learners
    session.apply([TokenEdit(39, 40, (7,))])
    last = [int(session.learners(layer)[39]) for layer in range(model.cfg.depth)]
    assert session.last_stats.rows_changed == [1] * model.cfg.depth
    assert session.last_stats.ops["mlp"] == sum(last) * cost.learner + model.cfg.depth * cost.gate


def test_dense_baseline_counts_acm_learners_too():
    model = tiny_model("opt-acm")
    ids = list(range(30))
    try:
        set_threshold(model, 1.0)
        full = DenseStrategy(model, ids).last_stats.ops["mlp"]
        set_threshold(model, 0.3)
        cheap = DenseStrategy(model, ids).last_stats.ops["mlp"]
        ran = sum(int(m.last_learners.sum()) for m in acm_modules(model))
    finally:
        set_threshold(model, 0.5)
    cost = CostModel.of(model.cfg)
    assert full == 30 * model.cfg.depth * (cost.mlp + cost.gate)
    assert cheap == ran * cost.learner + 30 * model.cfg.depth * cost.gate < full


def test_bench_acm_reports_each_budget():
    model = tiny_model("llama-acm")
    args = argparse.Namespace(policy="stable", max_drift=8, warmup=1)
    trace = [[TokenEdit(i, i + 1, (i + 3,))] for i in range(5)]
    try:
        out = acm_bench.bench_acm(model, list(range(40)), trace, [0.2, 1.0], args)
    finally:
        model.cfg.acm.threshold = 0.5
    low, high = out
    assert [r["threshold"] for r in out] == [0.2, 1.0]
    assert high["learners_per_token_document"] == 4.0 and low["learners_per_token_document"] < 4.0
    assert 1.0 <= low["learners_per_changed_row"] <= high["learners_per_changed_row"] == 4.0
    assert low["mlp_ops_median"] < high["mlp_ops_median"]
    assert all(r["max_abs_prob_diff_vs_dense_at_end"] < 1e-4 for r in out)
