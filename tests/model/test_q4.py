"""Groupwise 4-bit weights (``model/q4.py``): recovered exactly from Q4_1 values, multiplied
by the native kernel as by the dequantized weight, fine-tuning deltas applied unmerged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vqlsp import native
from vqlsp.model import q4
from vqlsp.model.q4 import NotQ4, Q4Linear, quantize_linears, recover_q4, round_to_q4


def q4_linear(n: int, k: int, bias: bool = False, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    linear = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        linear.weight.copy_(round_to_q4(linear.weight))
    return linear


def test_recovery_is_exact_for_q4_values_and_refuses_others():
    w = round_to_q4(torch.randn(64, 96))
    q, scale, minimum = recover_q4(w)
    rebuilt = (q.float().view(64, 3, 32) * scale[..., None] + minimum[..., None]).view(64, 96)
    torch.testing.assert_close(rebuilt, w, atol=1e-6, rtol=0)
    assert int(q.max()) == 15 and int(q.min()) == 0
    with pytest.raises(NotQ4, match="not groupwise 4-bit"):
        recover_q4(torch.randn(64, 96))
    with pytest.raises(NotQ4, match="groups of 32"):
        recover_q4(round_to_q4(torch.randn(64, 96))[:, :80])


@pytest.mark.parametrize("rows", [1, 2, 3, 8, 9, 17, 64, 65, 128, 200, 600])
def test_matmul_equals_the_dequantized_weight(rows):
    linear = q4_linear(96, 64, bias=True)
    layer = Q4Linear(linear)
    torch.testing.assert_close(layer.weight, linear.weight, atol=1e-6, rtol=0)
    x = torch.randn(rows, 64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), linear(x), atol=1e-4, rtol=1e-5)
        # strided rows (a slice of a wider buffer) and a leading batch axis
        wide = torch.randn(rows, 128)[:, :64]
        torch.testing.assert_close(layer(wide), linear(wide), atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(layer(x.view(1, rows, 64))[0], linear(x), atol=1e-4, rtol=1e-5)


def test_native_kernel_is_built_where_a_compiler_is():
    import shutil

    assert native.available() or shutil.which("cc") is None


def test_fallback_without_the_kernel(monkeypatch):
    linear = q4_linear(64, 64)
    layer = Q4Linear(linear)
    monkeypatch.setattr(native, "available", lambda: False)
    x = torch.randn(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), linear(x), atol=1e-4, rtol=1e-5)


def test_low_rank_delta_is_applied_unmerged():
    linear = q4_linear(64, 96)
    u, v = torch.randn(64, 4) * 0.1, torch.randn(4, 96) * 0.1
    layer = Q4Linear(linear, (u, v))
    merged = nn.Linear(96, 64, bias=False)
    with torch.no_grad():
        merged.weight.copy_(linear.weight + u @ v)
        for rows in (2, 100):  # kernel and dequantized paths
            x = torch.randn(rows, 96)
            torch.testing.assert_close(layer(x), merged(x), atol=1e-4, rtol=1e-5)
    assert "delta_rank=4" in repr(layer)
    with pytest.raises(ValueError, match="do not fit"):
        Q4Linear(linear, (torch.randn(64, 4), torch.randn(4, 32)))


def test_quantize_linears_finds_deltas_by_state_dict_name(monkeypatch):
    block = nn.Sequential(q4_linear(64, 64), nn.ReLU(), q4_linear(32, 64, seed=1))
    u, v = torch.randn(32, 2), torch.randn(2, 64)
    quantize_linears(block, {"blocks.3.2.weight": (u, v)}, prefix="blocks.3.")
    assert isinstance(block[0], Q4Linear) and block[0].delta_u is None
    assert isinstance(block[2], Q4Linear) and torch.equal(block[2].delta_u, u)
    monkeypatch.setattr(q4, "KERNEL_MAX_ROWS", 0)  # every call dequantizes: same results
    x = torch.randn(3, 64)
    with torch.no_grad():
        torch.testing.assert_close(block[2](x), x @ (block[2].base_weight() + u @ v).t(), atol=1e-4, rtol=1e-5)


@pytest.mark.real_model
def test_default_model_in_four_bits_matches_float32():
    """The default base is Q4_1: held in 4 bits (deltas unmerged), it computes what the float32
    copy computes, up to float rounding; the codes agree."""
    from vqlsp.model.registry import load_model

    fp32, four = load_model(None, "cpu"), load_model(None, "cpu", weights="q4")
    assert isinstance(four.blocks[0].q, Q4Linear) and four.blocks[0].q.delta_u is not None
    assert isinstance(four.blocks[0].mlp.up, Q4Linear) and four.blocks[0].mlp.up.delta_u is None
    torch.testing.assert_close(four.blocks[0].q.weight, fp32.blocks[0].q.weight, atol=1e-6, rtol=0)
    ids = torch.randint(0, fp32.cfg.vocab_size, (1, 96), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = fp32(ids), four(ids)
    agree = sum(int((x == y).sum()) for x, y in zip(a.codes, b.codes)) / sum(x.numel() for x in a.codes)
    assert agree > 0.999
    with pytest.raises(ValueError, match="unknown weight format"):
        load_model(None, "cpu", weights="int3")


@pytest.mark.parametrize("rows", [1, 5, 64, 100, 600])
def test_concatenated_parts_compute_each_part(rows):
    """q, k, v (or gate, up) as one layer: each slice of its output is that part's output, deltas
    (some parts without one) and biases included, and the parts still compute alone."""
    parts = [Q4Linear(q4_linear(n, 96, bias=True, seed=i), delta) for i, (n, delta) in enumerate([
        (64, (torch.randn(64, 3), torch.randn(3, 96))), (32, None), (32, (torch.randn(32, 2), torch.randn(2, 96))),
    ])]
    x = torch.randn(rows, 96)
    with torch.no_grad():
        alone = [p(x) for p in parts]
        fused = Q4Linear.concat(parts)
        torch.testing.assert_close(fused(x), torch.cat(alone, -1), atol=1e-4, rtol=1e-5)
        for p, y in zip(parts, alone):  # the parts now read views of the fused buffers
            torch.testing.assert_close(p(x), y, atol=1e-4, rtol=1e-5)
            assert p.q.untyped_storage().data_ptr() == fused.q.untyped_storage().data_ptr()
    assert "delta_rank=5" in repr(fused)
    assert set(fused.state_dict()) == {"bias"}  # the parts' buffers are the persistent ones
    with pytest.raises(ValueError, match="same inputs"):
        Q4Linear.concat([parts[0], Q4Linear(q4_linear(32, 64))])


def test_fused_block_computes_the_unfused_block():
    """``fuse_projections``: a block's q, k, v and its MLP's gate and up each in one layer; the
    block's outputs and its state dict are those of the unfused block."""
    import copy

    from vqlsp.model.config import ModelConfig
    from vqlsp.model.q4 import fuse_projections
    from vqlsp.model.transformer import Block, VQTransformer

    cfg = ModelConfig.tiny("llama", max_positions=64)
    model = VQTransformer(cfg).eval()
    block = model.blocks[0]
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(round_to_q4(m.weight))
    quantize_linears(block)
    fused = copy.deepcopy(block)
    fuse_projections(fused)
    assert isinstance(fused.qkv_fused, Q4Linear) and isinstance(fused.mlp.gate_up, Q4Linear)
    assert block.qkv_fused is None and block.mlp.gate_up is None
    assert fused.state_dict().keys() == block.state_dict().keys()
    x, pos = torch.randn(1, 7, cfg.d_model), model.positional(torch.arange(7)[None])
    with torch.no_grad():
        for a, b in zip(fused.qkv(x, pos), block.qkv(x, pos)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(fused.mlp(x), block.mlp(x), atol=1e-4, rtol=1e-5)
    assert isinstance(fused, Block)
