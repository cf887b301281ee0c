"""The normalized VQ transformer (DESIGN.md, "The model").

    x_0 = embed(tokens) [+ learned position embedding (OPT)]
    per layer:  a = norm1(x);  q, k, v = proj(a) [+ RoPE];  o_h = attention(q_h, k_h, v_h)
                c_h = VQ(o_h);  x = x + W_o concat(c_h);  x = x + mlp(norm2(x))
    final:      norm_f(x) -> heads

Each ``Block`` exposes the three per-row pieces around attention (``qkv``,
``quantize``, ``finish``) so the incremental engine can run them on gathered
rows; ``forward`` here is the dense reference the engine must equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .acm import AcmMlp
from .config import ACMConfig, ModelConfig, VQConfig
from .heads import DocumentHead, SpanHead
from .layers import Mlp, Rope, make_norm
from .vq import Quantized, VectorQuantizer


@dataclass
class Positional:
    """What a block needs to place tokens: RoPE angles, or nothing (learned positions)."""

    cos: torch.Tensor | None = None  # (..., T, 1, Dh)
    sin: torch.Tensor | None = None


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        self.cfg = cfg
        h, kv, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        self.norm1 = make_norm(cfg, cfg.d_model)
        self.q = nn.Linear(cfg.d_model, h * dh, bias=cfg.qkv_bias)
        self.k = nn.Linear(cfg.d_model, kv * dh, bias=cfg.qkv_bias)
        self.v = nn.Linear(cfg.d_model, kv * dh, bias=cfg.qkv_bias)
        self.o = nn.Linear(h * dh, cfg.d_model, bias=cfg.out_bias)
        self.vq = VectorQuantizer(h, dh, cfg.vq.codebook_size, cfg.vq.commitment)
        self.norm2 = make_norm(cfg, cfg.d_model)
        self.mlp: Mlp | AcmMlp = AcmMlp(cfg) if cfg.has_acm(layer) else Mlp(cfg)
        # q, k and v as one layer where the weights allow it (``q4.fuse_projections``): the
        # same outputs side by side, one matmul instead of three
        self.qkv_fused: nn.Module | None = None

    def qkv(self, x: torch.Tensor, pos: Positional) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows x (..., T, D) -> q (..., T, H, Dh), k and v (..., T, Hkv, Dh), RoPE applied."""
        a = self.norm1(x) if self.cfg.pre_norm else x
        shape, h, kv, dh = a.shape[:-1], self.cfg.n_heads, self.cfg.n_kv_heads, self.cfg.d_head
        if self.qkv_fused is not None:  # heads side by side: q's, k's, then v's
            qk, v = self.qkv_fused(a).view(*shape, h + 2 * kv, dh).split([h + kv, kv], -2)
            if pos.cos is not None:  # q and k rotated in one pass
                qk = Rope.apply(qk, pos.cos, pos.sin)
            q, k = qk.split([h, kv], -2)
            return q, k, v
        q = self.q(a).view(*shape, h, dh)
        k = self.k(a).view(*shape, kv, dh)
        v = self.v(a).view(*shape, kv, dh)
        if pos.cos is not None:
            q, k = Rope.apply(q, pos.cos, pos.sin), Rope.apply(k, pos.cos, pos.sin)
        return q, k, v

    def quantize(self, o: torch.Tensor) -> Quantized:
        """Attention outputs (..., T, H, Dh) -> their codes (see ``VectorQuantizer``)."""
        return self.vq(o)

    def finish(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The rest of the block, row by row: residual + W_o c, then the MLP residual."""
        x = x + self.o(c.flatten(-2))
        if self.cfg.pre_norm:
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x)  # post-LN (OPT-350m): norms after each residual add
        return self.norm2(x + self.mlp(x))

    def forward(
        self, x: torch.Tensor, pos: Positional, vq: bool
    ) -> tuple[torch.Tensor, Quantized | None, torch.Tensor]:
        q, k, v = self.qkv(x, pos)  # (B, T, H|Hkv, Dh)
        o = dense_attention(q, k, v)  # (B, T, H, Dh)
        quant = self.quantize(o) if vq else None
        return self.finish(x, quant.values if quant else o), quant, o


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention by sequence order: q (B, T, H, Dh), k/v (B, T, Hkv, Dh) -> (B, T, H, Dh)."""
    group = q.shape[-2] // k.shape[-2]
    if group > 1:  # grouped-query attention: each kv head serves `group` query heads
        k, v = k.repeat_interleave(group, dim=-2), v.repeat_interleave(group, dim=-2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, Dh)
    # q and k have the same length, so the causal mask is right for one token too (and a constant
    # flag keeps the function traceable with a dynamic length: ``model/onnx_export.py``)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return o.transpose(1, 2)


@dataclass
class ForwardOutput:
    hidden: torch.Tensor  # (B, T, hidden_dim) final states after norm_f (and project_out)
    logits: torch.Tensor | None = None  # (B, T, V) when asked for
    codes: list[torch.Tensor] = field(default_factory=list)  # per layer (B, T, H), VQ on
    margins: list[torch.Tensor] = field(default_factory=list)  # per layer (B, T, H), VQ on
    attn: list[torch.Tensor] = field(default_factory=list)  # per layer pre-VQ outputs (B, T, H, Dh), on request
    learners: list[torch.Tensor] = field(default_factory=list)  # per ACM layer (B, T) learners run per token
    vq_loss: torch.Tensor | None = None  # summed commitment/codebook loss over layers


class VQTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.embed_proj_dim or cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, e)
        if cfg.embed_proj_dim:
            self.project_in = nn.Linear(e, cfg.d_model, bias=False)
            self.project_out = nn.Linear(cfg.d_model, e, bias=False)
        if cfg.positions == "learned":
            self.pos_embed = nn.Embedding(cfg.max_positions + cfg.position_offset, cfg.d_model)
        else:
            self.rope = Rope(cfg)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        if cfg.final_norm:
            self.norm_f = make_norm(cfg, cfg.d_model)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(e, cfg.vocab_size, bias=False)
        self.document_head: DocumentHead | None = None
        self.span_head: SpanHead | None = None

    @property
    def hidden_dim(self) -> int:
        return self.cfg.embed_proj_dim or self.cfg.d_model

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def set_vq(self, vq: VQConfig) -> None:
        """Use other VQ settings: fresh (random) codebooks of ``vq.codebook_size`` in every block,
        on the model's device. Fit or load them before use."""
        self.cfg.vq = vq  # the blocks share this config object
        for block in self.blocks:
            block.vq = VectorQuantizer(self.cfg.n_heads, self.cfg.d_head, vq.codebook_size, vq.commitment).to(
                self.device
            )

    def set_acm(self, acm: ACMConfig, importance: list[torch.Tensor] | None = None) -> None:
        """Replace the MLPs of the first ``acm.layers`` blocks by ACM MLPs cut from them
        (``AcmMlp.from_mlp``; ``importance``: per layer, (d_ff,) neuron importance). The gates
        start untrained: train them (``train/acm.py``) or load them before use."""
        if self.cfg.acm is not None:
            raise ValueError("the model already has ACM MLPs")
        self.cfg.check_acm(acm)
        self.cfg.acm = acm
        for i in range(acm.layers):
            block = self.blocks[i]
            block.mlp = AcmMlp.from_mlp(block.mlp, self.cfg, importance[i] if importance else None)
            block.mlp.train(self.training)

    def set_heads(self, document: DocumentHead | None = None, span: SpanHead | None = None) -> None:
        self.document_head = document
        self.span_head = span

    # --- the per-row pieces the engine shares -------------------------------------------

    def embed_rows(self, ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """x_0 for tokens ids (..., T) at positions (..., T)."""
        x = self.embed(ids)
        if self.cfg.embed_proj_dim:
            x = self.project_in(x)
        if self.cfg.positions == "learned":
            self.check_positions(position_ids)
            x = x + self.pos_embed(position_ids + self.cfg.position_offset)
        return x

    def positional(self, position_ids: torch.Tensor) -> Positional:
        if self.cfg.positions == "rope":
            return Positional(*self.rope.cos_sin(position_ids))
        return Positional()

    def final_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Residual stream -> final hidden states (norm_f, project_out)."""
        if self.cfg.final_norm:
            x = self.norm_f(x)
        if self.cfg.embed_proj_dim:
            x = self.project_out(x)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        weight = self.embed.weight if self.cfg.tie_embeddings else self.lm_head.weight
        return hidden @ weight.T

    def check_positions(self, position_ids: torch.Tensor) -> None:
        if position_ids.numel() and (position_ids.min() < 0 or position_ids.max() >= self.cfg.max_positions):
            raise ValueError(
                f"position ids must lie in [0, {self.cfg.max_positions}) for this model's learned positions"
            )

    # --- the dense reference forward ----------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        *,
        vq: bool | None = None,
        return_logits: bool = False,
        return_attn: bool = False,
    ) -> ForwardOutput:
        """Dense forward over input_ids (B, T) at position_ids (B, T) (default 0..T-1).

        ``vq`` defaults to the config's ``vq.enabled``; ``vq=False`` is the base model.
        """
        use_vq = self.cfg.vq.enabled if vq is None else vq
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)
        x = self.embed_rows(input_ids, position_ids)
        pos = self.positional(position_ids)
        out = ForwardOutput(hidden=x)
        losses = []
        for block in self.blocks[: self.cfg.depth]:
            x, quant, o = block(x, pos, use_vq)
            if quant is not None:
                out.codes.append(quant.codes)
                out.margins.append(quant.margins)
                losses.append(quant.loss)
            if return_attn:
                out.attn.append(o)
            if isinstance(block.mlp, AcmMlp):
                out.learners.append(block.mlp.last_learners)
        out.hidden = self.final_rows(x)
        if losses:
            out.vq_loss = torch.stack(losses).sum()
        if return_logits:
            out.logits = self.logits(out.hidden)
        return out
