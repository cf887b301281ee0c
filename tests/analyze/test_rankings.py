"""Early-exit probes and the agreement of rankings, on synthetic figures with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqlsp.analyze import probes as probes_module
from vqlsp.analyze.agreement import agreement, hardest, pair_agreement
from vqlsp.analyze.probes import (
    ExitProbes,
    cached_probes,
    exit_at,
    fit_exit_probes,
    load_probes,
    probe_key,
    save_probes,
)


def test_exit_at_takes_the_first_sure_layer_else_the_last():
    probs = torch.tensor([
        [[0.6, 0.4], [0.5, 0.5]],  # layer 1
        [[0.95, 0.05], [0.3, 0.7]],  # layer 2
        [[0.1, 0.9], [0.2, 0.8]],  # layer 3
    ])
    depth, pred = exit_at(probs, 0.9, [1, 2, 3])
    assert depth.tolist() == [2, 3] and pred.tolist() == [0, 1]
    depth, _ = exit_at(probs, 0.5, [1, 2, 3])
    assert depth.tolist() == [1, 1]


def _features(n: int, seed: int):
    """Layer 1 is noise, layer 2 weakly informative, layer 3 separates the classes."""
    centres = torch.randn(3, 8, generator=torch.Generator().manual_seed(99)) * 4  # the same classes every draw
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    noise = lambda: torch.randn(n, 8, generator=g)  # noqa: E731
    return {1: noise(), 2: noise() + 0.3 * centres[y], 3: noise() * 0.3 + centres[y]}, y


def test_probes_exit_where_the_classes_separate(tmp_path):
    feats, y = _features(240, 0)
    probes = fit_exit_probes("document", ["a", "b", "c"], feats, y)
    acc = probes.fit["held_out_accuracy_by_layer"]
    assert acc["3"] > 0.95 and acc["1"] < 0.6
    test, y_test = _features(200, 1)
    depth, pred = probes.exit(test)
    assert (pred == y_test).float().mean() > 0.9
    assert depth.float().mean() > 2.0  # noise never makes the probes sure
    save_probes({"document": probes, "span": probes}, tmp_path)
    again = load_probes(tmp_path)["document"]
    assert again.threshold == probes.threshold and again.layers == [1, 2, 3]
    torch.testing.assert_close(again.probabilities(test), probes.probabilities(test))
    assert load_probes(tmp_path / "missing") is None


def _made_probes(key: str) -> dict[str, ExitProbes]:
    return {task: ExitProbes(task, ["x", "y"], [1], torch.zeros(1, 2, 4), torch.zeros(1, 2), 0.9, {}, key)
            for task in ("document", "span")}


def test_probe_keys_follow_the_weights_the_config_and_the_cap(tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes(b"one " + name.encode())
    key = probe_key(tmp_path, None)
    assert probe_key(tmp_path, None) == key and probe_key(tmp_path, 100) != key
    (tmp_path / "model.safetensors").write_bytes(b"retrained")
    assert probe_key(tmp_path, None) != key
    save_probes(_made_probes(key), tmp_path / "probes")
    assert load_probes(tmp_path / "probes", key)["span"].key == key
    assert load_probes(tmp_path / "probes", "another") is None  # stale
    assert load_probes(tmp_path / "probes") is not None  # no key asked: taken as they are


def test_cached_probes_are_reused_only_for_their_model(tmp_path, monkeypatch):
    monkeypatch.setenv("VQLSP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(probes_module, "SHIPPED_DIR", tmp_path / "shipped")
    fits = []

    def fake_fit(model, tokenizer, *, cap, seed, key, progress):
        fits.append(key)
        return _made_probes(key)

    monkeypatch.setattr(probes_module, "fit_task_probes", fake_fit)
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    first = cached_probes(None, None, checkpoint)
    again = cached_probes(None, None, checkpoint)
    assert len(fits) == 1 and again["document"].key == first["document"].key == fits[0]
    (checkpoint / "model.safetensors").write_bytes(b"retrained weights")
    cached_probes(None, None, checkpoint)  # the cached probes are stale: fitted again
    assert len(fits) == 2 and fits[1] != fits[0]
    # shipped probes with the right key are used before the cache, without fitting
    save_probes(_made_probes(probe_key(checkpoint, 8)), tmp_path / "shipped")
    assert cached_probes(None, None, checkpoint, cap=8)["span"].key == probe_key(checkpoint, 8)
    assert len(fits) == 2


def test_probes_need_examples_of_two_classes():
    with pytest.raises(ValueError, match="too few"):
        fit_exit_probes("span", ["x", "y"], {1: torch.randn(10, 4)}, torch.zeros(10, dtype=torch.long))


def test_agreement_of_equal_opposite_and_constant_rankings():
    a = np.arange(20, dtype=float)
    same = pair_agreement(a, a * 3 + 1)
    assert same["spearman"] == pytest.approx(1) and same["kendall"] == pytest.approx(1)
    assert same["top_overlap"] == 1.0 and same["top_sizes"] == [2, 2]
    assert same["top_overlap_chance"] == pytest.approx(0.1)
    opposite = pair_agreement(a, -a)
    assert opposite["spearman"] == pytest.approx(-1) and opposite["top_overlap"] == 0.0
    flat = pair_agreement(a, np.ones(20))
    assert flat["spearman"] is None and flat["top_sizes"] == [2, 20]


def test_hardest_keeps_ties():
    scores = np.array([1, 2, 3, 3, 3, 0, 0, 0, 0, 0], dtype=float)
    assert hardest(scores, 0.1).tolist() == [2, 3, 4]


def test_agreement_over_pairs_and_classes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    scores = {"exit": x, "reuse": x + rng.normal(scale=0.1, size=60), "active": rng.normal(size=60)}
    classes = ["p", "q"] * 30
    out = agreement(scores, classes)
    assert set(out["pairs"]) == {"active vs exit", "active vs reuse", "exit vs reuse"}
    assert out["pairs"]["exit vs reuse"]["all"]["spearman"] > 0.9
    assert abs(out["pairs"]["active vs exit"]["all"]["spearman"]) < 0.4
    assert set(out["pairs"]["exit vs reuse"]["per_class"]) == {"p", "q"}
    assert out["pairs"]["exit vs reuse"]["per_class"]["p"]["n"] == 30


def test_probes_from_a_checkpoint_shape():
    probes = ExitProbes("span", ["x", "y"], [1, 2], torch.zeros(2, 2, 4), torch.tensor([[2.0, 0], [0, 0]]), 0.8, {})
    depth, pred = probes.exit({1: torch.zeros(3, 4), 2: torch.zeros(3, 4)})
    assert depth.tolist() == [1, 1, 1] and pred.tolist() == [0, 0, 0]  # softmax(2, 0) = 0.88 >= 0.8
