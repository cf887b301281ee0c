"""VQ off = the base model: our dense forward equals transformers' own, logits within 1e-4."""

from __future__ import annotations

import pytest
import torch

from vqlsp.model.convert import UnsupportedArchitecture, from_hf

from . import hf_models

CASES = {
    "opt-pre-ln": lambda: hf_models.opt(),
    "opt-post-ln-project": lambda: hf_models.opt(pre_norm=False, proj_dim=32),
    "opt-no-final-norm": lambda: hf_models.opt(_remove_final_layer_norm=True),
    "llama-gqa-tied": lambda: hf_models.llama(kv_heads=2),
    "llama-mqa-untied": lambda: hf_models.llama(kv_heads=1, tied=False),
    "llama3-rope": lambda: hf_models.llama(rope={
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
    }),
    "linear-rope": lambda: hf_models.llama(rope={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
}


@pytest.mark.parametrize("case", CASES)
def test_logits_match_transformers(case):
    hf = CASES[case]()
    model = from_hf(hf)
    ids = torch.randint(0, hf_models.VOCAB, (2, 37), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids).logits
        ours = model(ids, vq=False, return_logits=True).logits
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_explicit_non_contiguous_positions(case):
    hf = CASES[case]()
    model = from_hf(hf)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, hf_models.VOCAB, (1, 30), generator=g)
    positions = torch.sort(torch.randperm(120, generator=g)[:30]).values.unsqueeze(0)  # gaps
    positions[0, 10] = positions[0, 9]  # and a duplicate, as the stable position policy makes
    with torch.no_grad():
        ref = hf(ids, position_ids=positions).logits
        ours = model(ids, positions, vq=False, return_logits=True).logits
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_converted_model_reports_its_form():
    model = from_hf(hf_models.opt(pre_norm=False, proj_dim=32))
    cfg = model.cfg
    assert (cfg.norm, cfg.mlp, cfg.positions, cfg.position_offset) == ("layernorm", "relu", "learned", 2)
    assert not cfg.pre_norm and cfg.embed_proj_dim == 32
    cfg = from_hf(hf_models.llama(kv_heads=1)).cfg
    assert (cfg.norm, cfg.mlp, cfg.positions, cfg.n_kv_heads) == ("rmsnorm", "swiglu", "rope", 1)


def test_unknown_architecture_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(UnsupportedArchitecture, match="gpt2"):
        from_hf(hf)


def test_learned_positions_out_of_range_are_refused():
    model = from_hf(hf_models.opt())
    with pytest.raises(ValueError, match="position ids"):
        model(torch.zeros(1, 3, dtype=torch.long), torch.tensor([[0, 1, 500]]), vq=False)


@pytest.mark.real_model
def test_smollm2_matches_transformers_on_a_real_paragraph(default_base, default_tokenizer):
    from transformers import AutoModelForCausalLM

    from vqlsp.model.base_weights import gguf_path

    path = gguf_path()
    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    text = (
        "The committee met on Thursday to discuss the new budget. After a long debate, members "
        "agreed to fund the library for another year, but asked for a report on its costs."
    )
    ids = torch.tensor([default_tokenizer.encode(text).ids])
    positions = torch.arange(ids.shape[1]).unsqueeze(0) * 2 + 5  # non-contiguous, as the engine may use
    with torch.no_grad():
        for pos in (None, positions):
            ref = hf(ids, position_ids=pos).logits
            ours = default_base(ids, pos, vq=False, return_logits=True).logits
            torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
