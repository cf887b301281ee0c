"""The recompute policy alone: its three decisions, without a session."""

from __future__ import annotations

import pytest
import torch

from vqlsp.engine.buckets import bucket_size, padded
from vqlsp.engine.policy import RecomputePolicy


def test_attend_all_once_updating_costs_more_than_attending():
    policy = RecomputePolicy(update_cost_ratio=1.0)
    # rows 100..199 hold 150 keys on average: 149 changed keys still update, 150 attend afresh
    assert not policy.attend_all(149, 100, 200)
    assert policy.attend_all(150, 100, 200)
    assert not policy.attend_all(10_000, 200, 200)  # no row after the first change
    assert not RecomputePolicy(update_cost_ratio=0.0).attend_all(10_000, 0, 200)  # always update


def test_must_search_where_some_head_has_used_up_its_slack():
    policy = RecomputePolicy(margin_guard=1e-3)
    slack = torch.tensor([[0.5, 1e-4, 0.2], [0.5, 0.3, -0.1]])  # (H=2, rows=3)
    assert policy.must_search(slack).tolist() == [False, True, True]


def test_rejects_settings_that_make_no_sense():
    for bad in (dict(cancel_ratio=0.0), dict(cancel_ratio=1.0), dict(margin_guard=-1.0), dict(update_cost_ratio=-1)):
        with pytest.raises(ValueError):
            RecomputePolicy(**bad)


def test_buckets_pad_to_fixed_sizes_by_repeating_the_last_row():
    assert [bucket_size(r) for r in (0, 1, 8, 9, 100, 128, 129, 300)] == [0, 8, 8, 16, 128, 128, 256, 384]
    slots = torch.tensor([5, 2, 9])
    assert padded(slots).tolist() == [5, 2, 9] + [9] * 5
    assert padded(slots[:0]).numel() == 0
