"""Small random Hugging Face models built in the tests (no OPT weights can be downloaded)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

VOCAB = 300


def opt(pre_norm: bool = True, proj_dim: int = 64, **kw) -> OPTForCausalLM:
    torch.manual_seed(0)
    cfg = OPTConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128,
        max_position_embeddings=128, word_embed_proj_dim=proj_dim, do_layer_norm_before=pre_norm, **kw,
    )
    return OPTForCausalLM(cfg).eval()


def llama(kv_heads: int = 2, tied: bool = True, rope: dict | None = None) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=kv_heads, intermediate_size=128, max_position_embeddings=256,
        tie_word_embeddings=tied, rope_parameters=rope or {"rope_type": "default", "rope_theta": 10000.0},
    )
    return LlamaForCausalLM(cfg).eval()
