"""The VQ layer: nearest codes, margins, straight-through gradients, k-means fitting."""

from __future__ import annotations

import pytest
import torch

from vqlsp import native
from vqlsp.model.config import ModelConfig
from vqlsp.model.transformer import VQTransformer
from vqlsp.model.vq import (
    VectorQuantizer,
    kmeans_codebook,
    nearest_codes,
    relative_quantization_error,
)
from vqlsp.train.codebooks import fit_codebooks


def test_nearest_codes_and_margins_match_brute_force():
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(3, 10, 8, generator=g)
    x = torch.randn(5, 7, 3, 8, generator=g)
    codes, margins = nearest_codes(x, codebook)
    dist = torch.cdist(x.transpose(0, 2).reshape(3, -1, 8), codebook)  # (H, N, K) Euclidean
    sorted_dist, order = dist.sort(-1)
    expect_codes = order[..., 0].reshape(3, 7, 5).transpose(0, 2)
    expect_margins = ((sorted_dist[..., 1] - sorted_dist[..., 0]) / 2).reshape(3, 7, 5).transpose(0, 2)
    assert torch.equal(codes, expect_codes)
    torch.testing.assert_close(margins, expect_margins, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not native.available(), reason="no C compiler: PyTorch ops only")
@pytest.mark.parametrize("k", [1, 8, 32, 33])
@pytest.mark.parametrize("dh", [8, 24, 64])
def test_the_native_search_equals_the_pytorch_one(k, dh, monkeypatch):
    """The C kernel against the PyTorch ops on rows as the engine passes them (a head-major
    buffer's rows, transposed: strided); each row's result depends on that row alone."""
    g = torch.Generator().manual_seed(k * dh)
    codebook = torch.randn(9, k, dh, generator=g)
    x = torch.randn(9, 50, dh, generator=g)[:, 3:40].transpose(0, 1)  # (rows, H, Dh), strided
    codes, margins = nearest_codes(x, codebook)
    assert torch.equal(nearest_codes(x[5:6], codebook)[1], margins[5:6])  # bit for bit, alone
    monkeypatch.setattr(native, "available", lambda: False)
    ref_codes, ref_margins = nearest_codes(x, codebook)
    tie = ref_margins < 1e-4
    assert torch.equal(codes[~tie], ref_codes[~tie]) and codes.dtype == ref_codes.dtype
    torch.testing.assert_close(margins, ref_margins, atol=1e-4, rtol=1e-4)
    if k == 1:
        assert bool(margins.isinf().all())


def test_a_move_smaller_than_the_margin_never_flips_the_code():
    g = torch.Generator().manual_seed(1)
    codebook = torch.randn(2, 16, 8, generator=g)
    x = torch.randn(500, 2, 8, generator=g)
    codes, margins = nearest_codes(x, codebook)
    direction = torch.randn(500, 2, 8, generator=g)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    moved = x + direction * (margins * 0.99).unsqueeze(-1)
    assert torch.equal(nearest_codes(moved, codebook)[0], codes)
    # ...while moving past it towards the runner-up does flip some
    pushed = x + direction * (margins * 50).unsqueeze(-1)
    assert not torch.equal(nearest_codes(pushed, codebook)[0], codes)


def test_straight_through_gradients_reach_input_and_codebook():
    vq = VectorQuantizer(n_heads=2, d_head=4, codebook_size=8)
    x = torch.randn(3, 5, 2, 4, requires_grad=True)
    out = vq(x)
    torch.testing.assert_close(out.values.detach(), vq.lookup(out.codes).detach())  # x + (q - x)
    (out.values.sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    assert out.loss.item() > 0


def test_vq_forward_gradients_flow_through_the_whole_model():
    model = VQTransformer(ModelConfig.tiny("llama"))
    model.train()
    ids = torch.randint(0, 256, (2, 12))
    out = model(ids, vq=True, return_logits=True)
    (out.logits.logsumexp(-1).mean() + out.vq_loss).backward()
    assert model.embed.weight.grad.abs().sum() > 0  # below every VQ layer
    assert model.blocks[0].q.weight.grad.abs().sum() > 0


def test_kmeans_beats_random_codebooks():
    g = torch.Generator().manual_seed(2)
    centers = torch.randn(2, 6, 8, generator=g) * 3
    samples = (centers[:, torch.randint(6, (2000,), generator=g)] + 0.3 * torch.randn(2, 2000, 8, generator=g))
    samples = samples.transpose(0, 1)  # (N, H, Dh)
    fitted = kmeans_codebook(samples, k=6, iters=20)
    random = torch.randn(2, 6, 8, generator=g)
    assert relative_quantization_error(samples, fitted) < 0.5 * relative_quantization_error(samples, random)
    assert relative_quantization_error(samples, fitted) < 0.05


def test_fitting_a_model_lowers_its_quantization_error():
    torch.manual_seed(0)
    model = VQTransformer(ModelConfig.tiny("opt", n_layers=3)).eval()
    windows = torch.randint(0, 256, (8, 64))
    with torch.no_grad():
        before = model(windows, vq=False, return_attn=True).attn
        errors_random = [
            relative_quantization_error(o.flatten(0, 1), b.vq.codebook) for o, b in zip(before, model.blocks)
        ]
    errors = fit_codebooks(model, windows, progress=False)
    assert len(errors) == 3
    assert errors[0] < errors_random[0]  # layer 0 sees the same activations before and after
    assert all(e < 0.9 for e in errors)
