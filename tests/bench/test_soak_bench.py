"""The soak's edits and its flatness criterion (``vqlsp bench soak``), without a server."""

from __future__ import annotations

import random

from vqlsp.bench.soak_bench import (
    LEVEL_WINDOW_S,
    TRIM_ABOVE,
    apply,
    burst_edits,
    level_figures,
    levels,
)
from vqlsp.bench.text_bench import make_prose


def test_documents_keep_their_length_over_a_soak():
    """20,000 edits in bursts of 40 over 50 documents: each stays near its starting length
    (before, pastes outweighed deletions and the documents grew by a third)."""
    rng = random.Random(0)
    docs = [make_prose(3000, rng) for _ in range(50)]
    for _ in range(500):
        k = rng.randrange(len(docs))
        for start, end, new in burst_edits(docs[k], 40, rng, 3000):
            assert 0 <= start <= end <= len(docs[k])
            docs[k] = apply(docs[k], start, end, new)
    mean = sum(map(len, docs)) / len(docs)
    assert 0.9 * 3000 <= mean <= TRIM_ABOVE * 3000 + 100
    assert max(map(len, docs)) <= TRIM_ABOVE * 3000 + 100  # (one paste past the bound at most)


def test_a_spike_is_not_growth_but_a_rising_level_is():
    flat = [(t * 0.5, 1000.0 + (5 if t % 2 else 0)) for t in range(600)]
    spiked = [(t, 1300.0 if k == 300 else rss) for k, (t, rss) in enumerate(flat)]
    figures = level_figures(spiked)
    assert figures["level_flat_within_10pct"] and figures["rss_level_max_mib"] <= 1005
    rising = [(t, rss * (1 + t / 1000)) for t, rss in flat]  # +30% over 300 s
    figures = level_figures(rising)
    assert not figures["level_flat_within_10pct"]
    assert 20 < figures["level_last_over_warmup_pct"] < 30
    assert 15 < figures["last_vs_first_quarter_pct"] < 25 and figures["rss_quarter_medians_mib"] == sorted(
        figures["rss_quarter_medians_mib"])


def test_levels_start_after_a_full_window():
    samples = [(float(t), float(t)) for t in range(100)]
    lv = levels(samples, window_s=10)
    assert lv[0][0] == 10 and lv[0][1] == 5.5  # the median of samples 1..10 (the window is (t - 10, t])
    assert levels(samples[:5], window_s=LEVEL_WINDOW_S) == [] and level_figures(samples[:5]) == {}
