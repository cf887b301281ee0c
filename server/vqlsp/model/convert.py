"""Converters from Hugging Face transformers models into the normalized form.

Supported: ``OPTForCausalLM`` / ``OPTModel`` (learned positions at offset 2,
LayerNorm, ReLU MLP, biases, pre-LN and post-LN, project_in/out) and
``LlamaForCausalLM`` / ``LlamaModel`` (RMSNorm, RoPE with the config's rope
parameters, grouped-query attention, SwiGLU, tied or untied embeddings). Every
converted tensor's shape is checked against the target model; nothing is
loaded loosely. The VQ codebooks start random: fit them with
``vqlsp.train.codebooks``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import ModelConfig, VQConfig
from .transformer import VQTransformer
from .weights import load_checked


class UnsupportedArchitecture(ValueError):
    """The source model is not one of the architectures vqlsp converts."""


def from_hf(hf_model: nn.Module, vq: VQConfig | None = None) -> VQTransformer:
    """Convert a transformers OPT or Llama model (CausalLM or bare) to a ``VQTransformer``."""
    model_type = getattr(hf_model.config, "model_type", None)
    if model_type == "opt":
        cfg, weights = _opt(hf_model)
    elif model_type == "llama":
        cfg, weights = _llama(hf_model)
    else:
        raise UnsupportedArchitecture(
            f"unsupported architecture {model_type!r}: vqlsp converts OPT and Llama models"
        )
    if vq is not None:
        cfg.vq = vq
    model = VQTransformer(cfg)
    load_checked(model, weights, allow_missing=lambda name: name.endswith("vq.codebook"))
    return model.eval()


def _sd(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().float() for k, v in module.state_dict().items()}


def _opt(hf: nn.Module) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    c = hf.config
    decoder = hf.model.decoder if hasattr(hf, "model") else hf.decoder
    if c.activation_function != "relu":
        raise UnsupportedArchitecture(f"OPT with activation {c.activation_function!r} (only relu)")
    proj = c.word_embed_proj_dim if c.word_embed_proj_dim != c.hidden_size else None
    has_final_norm = decoder.final_layer_norm is not None
    cfg = ModelConfig(
        arch="opt",
        vocab_size=c.vocab_size,
        d_model=c.hidden_size,
        n_layers=c.num_hidden_layers,
        n_heads=c.num_attention_heads,
        d_head=c.hidden_size // c.num_attention_heads,
        d_ff=c.ffn_dim,
        norm="layernorm",
        norm_eps=1e-5,
        mlp="relu",
        positions="learned",
        max_positions=c.max_position_embeddings,
        position_offset=decoder.embed_positions.offset,
        qkv_bias=c.enable_bias,
        out_bias=c.enable_bias,
        mlp_bias=c.enable_bias,
        pre_norm=c.do_layer_norm_before,
        final_norm=has_final_norm,
        embed_proj_dim=proj,
        tie_embeddings=_tied(hf, decoder.embed_tokens),
    )
    w = {"embed.weight": decoder.embed_tokens.weight, "pos_embed.weight": decoder.embed_positions.weight}
    if proj:
        w["project_in.weight"] = decoder.project_in.weight
        w["project_out.weight"] = decoder.project_out.weight
    if has_final_norm:
        w.update(_norm(decoder.final_layer_norm, "norm_f.", cfg))
    for i, layer in enumerate(decoder.layers):
        p = f"blocks.{i}."
        a = layer.self_attn
        w.update(_sd(a.q_proj, p + "q.") | _sd(a.k_proj, p + "k.") | _sd(a.v_proj, p + "v."))
        w.update(_sd(a.out_proj, p + "o."))
        w.update(_norm(layer.self_attn_layer_norm, p + "norm1.", cfg))
        w.update(_norm(layer.final_layer_norm, p + "norm2.", cfg))
        w.update(_sd(layer.fc1, p + "mlp.fc1.") | _sd(layer.fc2, p + "mlp.fc2."))
    if not cfg.tie_embeddings:
        w["lm_head.weight"] = hf.lm_head.weight
    return cfg, {k: v.detach().float() for k, v in w.items()}


def _norm(norm: nn.LayerNorm, prefix: str, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """A LayerNorm's weights; OPT's ``layer_norm_elementwise_affine=False`` becomes weight 1, bias 0."""
    d = norm.normalized_shape[0]
    weight = norm.weight if norm.weight is not None else torch.ones(d)
    bias = norm.bias if norm.bias is not None else torch.zeros(d)
    if norm.eps != cfg.norm_eps:
        cfg.norm_eps = norm.eps
    return {prefix + "weight": weight, prefix + "bias": bias}


def _tied(hf: nn.Module, embed: nn.Embedding) -> bool:
    head = getattr(hf, "lm_head", None)
    return head is None or head.weight.data_ptr() == embed.weight.data_ptr() or torch.equal(
        head.weight, embed.weight
    )


def _llama(hf: nn.Module) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    c = hf.config
    base = hf.model if hasattr(hf, "model") else hf
    rope = _rope_parameters(c)
    rope_type = rope.get("rope_type", "default")
    if rope_type == "dynamic":
        raise UnsupportedArchitecture("dynamic RoPE scaling depends on sequence length; not supported")
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    cfg = ModelConfig(
        arch="llama",
        vocab_size=c.vocab_size,
        d_model=c.hidden_size,
        n_layers=c.num_hidden_layers,
        n_heads=c.num_attention_heads,
        n_kv_heads=c.num_key_value_heads,
        d_head=head_dim,
        d_ff=c.intermediate_size,
        norm="rmsnorm",
        norm_eps=c.rms_norm_eps,
        mlp="swiglu",
        positions="rope",
        max_positions=c.max_position_embeddings,
        rope_theta=float(rope.get("rope_theta", 10000.0)),
        rope_scaling={k: v for k, v in rope.items() if k != "rope_theta"} or None,
        attn_scale=float(base.rotary_emb.attention_scaling),
        qkv_bias=c.attention_bias,
        out_bias=c.attention_bias,
        mlp_bias=getattr(c, "mlp_bias", False),
        tie_embeddings=_tied(hf, base.embed_tokens),
    )
    if c.hidden_act != "silu":
        raise UnsupportedArchitecture(f"Llama with activation {c.hidden_act!r} (only silu)")
    w = {
        "embed.weight": base.embed_tokens.weight,
        "norm_f.weight": base.norm.weight,
        "rope.inv_freq": base.rotary_emb.inv_freq,
    }
    for i, layer in enumerate(base.layers):
        p = f"blocks.{i}."
        a, m = layer.self_attn, layer.mlp
        w.update(_sd(a.q_proj, p + "q.") | _sd(a.k_proj, p + "k.") | _sd(a.v_proj, p + "v."))
        w.update(_sd(a.o_proj, p + "o."))
        w.update(_sd(m.gate_proj, p + "mlp.gate.") | _sd(m.up_proj, p + "mlp.up."))
        w.update(_sd(m.down_proj, p + "mlp.down."))
        w[p + "norm1.weight"] = layer.input_layernorm.weight
        w[p + "norm2.weight"] = layer.post_attention_layernorm.weight
    if not cfg.tie_embeddings:
        w["lm_head.weight"] = hf.lm_head.weight
    return cfg, {k: v.detach().float() for k, v in w.items()}


def _rope_parameters(c: Any) -> dict[str, Any]:
    """RoPE settings across transformers versions (``rope_parameters`` in 5.x, ``rope_scaling`` before)."""
    params = getattr(c, "rope_parameters", None)
    if params:
        return dict(params)
    params = dict(getattr(c, "rope_scaling", None) or {})
    params.setdefault("rope_theta", getattr(c, "rope_theta", 10000.0))
    if "type" in params:
        params.setdefault("rope_type", params.pop("type"))
    return params
