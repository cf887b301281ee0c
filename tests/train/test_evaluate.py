"""``policy_agreement``: stable-vs-exact label agreement and what it is made of."""

from __future__ import annotations

import random

import pytest
from tests.engine.models import VOCAB, tiny_model

from vqlsp.train.evaluate import policy_agreement
from vqlsp.train.sentiment import SpanDocument


def documents(count: int = 4, length: int = 40) -> list[SpanDocument]:
    rng = random.Random(0)
    return [
        SpanDocument([rng.randrange(VOCAB) for _ in range(length)], [(0, 15), (15, 30), (30, length)], [0, 1, 0])
        for _ in range(count)
    ]


def test_drifted_ids_move_probabilities_and_exact_ones_do_not():
    model = tiny_model("llama")
    drifted = policy_agreement(model, documents(), edits=12)
    assert drifted["labels_compared"] > 4 * 12  # a document label and its spans per edit
    assert drifted["mean_probability_shift"] > 0
    assert 0 <= drifted["near_tie_share"] <= 1 and 0 <= drifted["agreement_clear_of_ties"] <= 1
    # a drift bound of 0 re-indexes after every insertion or deletion: the ids are always exact
    exact = policy_agreement(model, documents(), edits=12, max_drift=0)
    assert exact["agreement"] == exact["agreement_clear_of_ties"] == 1.0
    assert exact["mean_probability_shift"] == pytest.approx(0, abs=1e-6)
    assert exact["labels_compared"] == drifted["labels_compared"]
