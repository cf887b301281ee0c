"""Adapters on attention and MLP projections: start as the base, merge exactly, ship as deltas."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tests.train.test_pipeline import SOURCE, made_up_tasks, tiny_base

from vqlsp.model.checkpoint import load_checkpoint, save_checkpoint
from vqlsp.model.config import ModelConfig
from vqlsp.model.transformer import VQTransformer
from vqlsp.train.finetune import FinetuneConfig, finetune
from vqlsp.train.lora import LoRALinear, add_lora, lora_targets, merge_lora


def tiny(arch: str) -> VQTransformer:
    torch.manual_seed(0)
    return VQTransformer(ModelConfig.tiny(arch, n_layers=2)).eval()


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_mlp_adapters_start_as_the_base_and_merge_exactly(arch):
    model = tiny(arch)
    ids = torch.randint(0, model.cfg.vocab_size, (2, 12))
    with torch.no_grad():
        before = model(ids, vq=False).hidden
        targets = lora_targets(model.cfg, mlp=True)
        assert targets[4:] == (("mlp.gate", "mlp.up", "mlp.down") if arch == "llama" else ("mlp.fc1", "mlp.fc2"))
        add_lora(model, rank=2, targets=targets)
        adapters = [m for m in model.modules() if isinstance(m, LoRALinear)]
        assert len(adapters) == len(targets) * model.cfg.n_layers
        torch.testing.assert_close(model(ids, vq=False).hidden, before)  # B = 0: the base
        for m in adapters:
            m.lora_b.normal_()
        adapted = model(ids, vq=False).hidden
        assert not torch.allclose(adapted, before)
        merge_lora(model)
        assert not any(isinstance(m, LoRALinear) for m in model.modules())
        torch.testing.assert_close(model(ids, vq=False).hidden, adapted, atol=1e-4, rtol=1e-4)


def test_finetune_with_mlp_adapters_ships_them_as_deltas(tmp_path):
    data = made_up_tasks()
    windows = torch.tensor([ids[:16] for ids in data.doc_ids["train"]])
    model = tiny_base()
    cfg = FinetuneConfig(steps=3, batch_size=2, lora_rank=2, lora_mlp=True, logit_positions=4, lr=1e-2, warmup=1)
    finetune(model, windows, cfg, tmp_path / "run", progress=False)
    assert float(model.blocks[0].mlp.up.lora_b.detach().abs().max()) > 0  # the MLP adapters trained
    merge_lora(model)
    save_checkpoint(model, tmp_path / "ckpt", base_source=SOURCE, external_base=True, delta_rank=2,
                    base_model=tiny_base())
    stored = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert {"blocks.0.mlp.up.weight.delta_u", "blocks.0.q.weight.delta_u"} <= set(stored)
    assert "blocks.0.mlp.up.weight" not in stored  # the factors, not the full matrix
    loaded = load_checkpoint(tmp_path / "ckpt")
    ids = windows[:2]
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).hidden, model(ids).hidden, atol=1e-4, rtol=1e-4)
