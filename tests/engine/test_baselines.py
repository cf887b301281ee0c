"""Baselines share the session's interface, results and operation counter."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vqlsp.engine.baselines import DenseStrategy, PrefixCacheStrategy
from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.engine.ops import CostModel, causal_pairs, dense_ops
from vqlsp.engine.plan import EditPlan
from vqlsp.engine.session import IncrementalSession

from .models import VOCAB, tiny_model

TOL = 1e-4


@pytest.mark.parametrize("policy", ["stable", "exact"])
@pytest.mark.parametrize("variant", ["llama", "opt"])
def test_three_strategies_agree(variant, policy):
    model = tiny_model(variant)
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(0, VOCAB, (80,), generator=gen).tolist()
    strategies = [cls(model, ids, policy) for cls in (DenseStrategy, PrefixCacheStrategy, IncrementalSession)]
    calls = [[TokenEdit(10, 10, (1, 2))], [TokenEdit(0, 3)], [TokenEdit(40, 41, (9,)), TokenEdit(70, 70, (4,))],
             [TokenEdit(0, 79)], [TokenEdit(0, 1)], [TokenEdit(0, 0, (5, 6, 7))]]
    for call in calls:
        ids = apply_edits(ids, call)
        stats = [s.apply(call) for s in strategies]
        outs = [s.outputs(hidden=True) for s in strategies]
        for s, out in zip(strategies, outs):
            assert s.token_ids == ids
            assert torch.equal(s.position_ids, strategies[0].position_ids)
            torch.testing.assert_close(out.probabilities, outs[0].probabilities, atol=TOL, rtol=0)
            torch.testing.assert_close(out.hidden, outs[0].hidden, atol=TOL, rtol=0)
        for s in stats:
            assert s.tokens == len(ids) and s.ms > 0 and len(s.rows_changed) == model.cfg.depth


def test_operation_counts():
    model = tiny_model("llama")
    cost, depth = CostModel.of(model.cfg), model.cfg.depth
    ids = list(range(100))
    dense = DenseStrategy(model, ids)
    prefix = PrefixCacheStrategy(model, ids)
    session = IncrementalSession(model, ids)
    # a first full pass costs the same for everyone
    assert session.last_stats.ops == dense_ops(cost, 100, depth)
    assert prefix.last_stats.ops.total == dense.last_stats.ops.total
    edit = [TokenEdit(90, 91, (7,))]
    d, p, i = dense.apply(edit), prefix.apply(edit), session.apply(edit)
    assert d.total_ops == dense_ops(cost, 100, depth).total
    rows = 10
    expected_prefix = depth * (rows * (cost.qkv + cost.out + cost.mlp + cost.vq) + cost.attention(causal_pairs(90, 100)))
    assert p.total_ops == expected_prefix
    assert i.total_ops < p.total_ops < d.total_ops
    assert i.ops["accumulate"] > 0


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.integers(0, 9), max_size=12),
    data=st.data(),
)
def test_plan_matches_apply_edits(ids, data):
    n = len(ids)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=6)))
    edits, seen = [], set()
    for a, b in zip(cuts[::2], cuts[1::2]):
        new = tuple(data.draw(st.lists(st.integers(10, 19), max_size=3)))
        if (a, b) in seen:
            continue
        seen.add((a, b))
        edits.append(TokenEdit(a, b, new))
    plan = EditPlan.build(n, edits)
    out = [None] * plan.new_len
    for seg in plan.kept:
        out[seg.new_start : seg.new_start + len(seg)] = ids[seg.old_start : seg.old_end]
    rows, new_ids = plan.inserted()
    for r, t in zip(rows, new_ids):
        out[r] = t
    assert out == apply_edits(ids, edits)
    deleted, _ = plan.deleted()
    assert len(deleted) + sum(len(s) for s in plan.kept) == n
