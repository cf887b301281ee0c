"""ACM MLPs (model/acm.py): learners cut from an MLP, the gate's budget knob, ties, checkpoints."""

from __future__ import annotations

import pytest
import torch

from vqlsp.model.acm import AcmMlp, acm_modules, learners_for, set_threshold, threshold_for_mean
from vqlsp.model.checkpoint import load_checkpoint, save_checkpoint
from vqlsp.model.config import ACMConfig, ModelConfig
from vqlsp.model.transformer import VQTransformer


def tiny(arch: str, **acm) -> VQTransformer:
    torch.manual_seed(0)
    model = VQTransformer(ModelConfig.tiny(arch)).eval()
    model.set_acm(ACMConfig(**{"learners": 4, **acm}))
    return model


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_all_learners_are_the_original_mlp(arch):
    torch.manual_seed(0)
    model = VQTransformer(ModelConfig.tiny(arch)).eval()
    ids = torch.randint(0, 256, (2, 24))
    with torch.no_grad():
        plain = model(ids, vq=False).hidden
        model.set_acm(ACMConfig(learners=4, threshold=1.0))
        out = model(ids, vq=False)
    torch.testing.assert_close(out.hidden, plain, atol=1e-5, rtol=0)
    assert [t.shape for t in out.learners] == [(2, 24)] * 2 and all(bool((t == 4).all()) for t in out.learners)
    assert all(isinstance(b.mlp, AcmMlp) for b in model.blocks)


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_gated_rows_equal_their_prefix_of_learners(arch):
    """Running only each row's learners gives the same output as the sum of that prefix."""
    model = tiny(arch, threshold=0.5)
    acm = acm_modules(model)[0]
    with torch.no_grad():
        acm.gate.net.weight.mul_(5)
        x = torch.randn(3, 20, model.cfg.d_model)
        y = acm(x)
        k = acm.last_learners
        expected = acm.prefixes(x).gather(-2, (k - 1)[..., None, None].expand(3, 20, 1, x.shape[-1]))[..., 0, :]
    assert set(k.unique().tolist()) > {1}, "the test needs rows with different learner counts"
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_threshold_is_a_monotone_budget_knob():
    model = tiny("llama")
    for acm in acm_modules(model):
        acm.gate.net.weight.data.mul_(5)
    ids = torch.randint(0, 256, (1, 64))
    means = []
    for threshold in (0.05, 0.25, 0.5, 0.75, 1.0):
        set_threshold(model, threshold)
        with torch.no_grad():
            means.append(float(torch.cat(model(ids).learners).float().mean()))
    assert means == sorted(means) and means[0] < means[-1] == 4.0
    with pytest.raises(ValueError):
        set_threshold(model, 0.0)


def test_gate_ties_go_to_fewer_learners():
    probs = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]])
    assert learners_for(probs, 0.5).tolist() == [2, 1, 3]
    assert learners_for(probs, 1.0).tolist() == [4, 2, 4]  # 0.5 + 0.5 reaches 1 exactly at two learners


def test_threshold_for_a_target_mean():
    torch.manual_seed(0)
    probs = [torch.softmax(torch.randn(500, 4) * 2, -1) for _ in range(3)]
    threshold = threshold_for_mean(probs, 2.5)
    mean = float(torch.cat([learners_for(p, threshold).float() for p in probs]).mean())
    assert abs(mean - 2.5) < 0.05


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_checkpoint_round_trips_config_and_weights(tmp_path, arch):
    model = tiny(arch, threshold=0.3, gate_hidden=8)
    save_checkpoint(model, tmp_path)
    loaded = load_checkpoint(tmp_path)
    assert loaded.cfg.acm == ACMConfig(learners=4, layers=2, gate_hidden=8, threshold=0.3)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ids = torch.randint(0, 256, (1, 30))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).hidden, model(ids).hidden)


def test_bad_acm_configs_are_refused():
    with pytest.raises(ValueError, match="divide"):
        ModelConfig.tiny("llama", acm={"learners": 5})
    with pytest.raises(ValueError, match="threshold"):
        ModelConfig.tiny("llama", acm={"learners": 4, "threshold": 1.5})
    model = tiny("llama")
    with pytest.raises(ValueError, match="already"):
        model.set_acm(ACMConfig())
