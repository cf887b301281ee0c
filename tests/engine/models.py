"""Tiny VQ models for the engine tests: random weights, codebooks fitted on their own activations.

Fitted (k-means) codebooks make some codes survive an edit, so the tests exercise
both the reuse path (margin check passes) and the flip path (search, W_o + MLP).
"""

from __future__ import annotations

import copy
from functools import cache

import torch

from vqlsp.model.acm import AcmMlp, acm_modules
from vqlsp.model.config import ACMConfig, ModelConfig
from vqlsp.model.heads import DocumentHead, SpanHead
from vqlsp.model.transformer import VQTransformer
from vqlsp.train.codebooks import fit_codebooks

VOCAB = 256
VARIANTS = {
    "llama": dict(arch="llama"),  # RoPE, GQA (4 heads, 2 kv), SwiGLU, RMSNorm
    "opt": dict(arch="opt"),  # learned positions (offset 2), ReLU, LayerNorm, biases
    "opt-post-ln": dict(arch="opt", pre_norm=False),
    "llama-mqa-3layers": dict(arch="llama", n_kv_heads=1, n_layers=3),
    "llama-acm": dict(arch="llama", acm_learners=4),  # ACM MLPs (model/acm.py): SwiGLU learners
    "opt-acm": dict(arch="opt", acm_learners=4),  # ... ReLU learners
}


@cache
def tiny_model(variant: str = "llama", codebook_size: int = 8, pooling: str = "mean", seed: int = 0) -> VQTransformer:
    torch.manual_seed(seed)
    overrides = dict(VARIANTS[variant])
    arch = overrides.pop("arch")
    learners = overrides.pop("acm_learners", 0)
    cfg = ModelConfig.tiny(arch, vq={"codebook_size": codebook_size}, max_positions=1024, **overrides)
    model = VQTransformer(cfg).eval()
    if learners:
        model.set_acm(ACMConfig(learners=learners, threshold=0.5))
        with torch.no_grad():
            for acm in acm_modules(model):  # random gates, sharp enough that tokens run 1 to N learners
                acm.gate.net.weight.mul_(4)
    model.set_heads(
        DocumentHead(model.hidden_dim, ["a", "b", "c"], pooling),
        SpanHead(model.hidden_dim, ["x", "y"]),
    )
    with torch.no_grad():
        for head in (model.document_head, model.span_head):  # visible probability differences
            head.linear.weight.mul_(20)
    windows = torch.randint(0, VOCAB, (8, 96), generator=torch.Generator().manual_seed(seed))
    fit_codebooks(model, windows, progress=False)
    return model


@cache
def tiny_q4_model(variant: str = "llama") -> VQTransformer:
    """``tiny_model`` with 4-bit weights: every block linear rounded to Q4_1 values and held
    as ``Q4Linear``, the attention projections with random rank-2 deltas kept unmerged (the
    default model's form)."""
    from vqlsp.model.q4 import round_to_q4
    from vqlsp.model.registry import quantize_blocks

    model = copy.deepcopy(tiny_model(variant))
    gen = torch.Generator().manual_seed(1)
    deltas = {}
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            for name, module in block.named_modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight.copy_(round_to_q4(module.weight))
                    if name in ("q", "k", "v", "o"):
                        u = torch.randn(module.out_features, 2, generator=gen) * 0.05
                        deltas[f"blocks.{i}.{name}.weight"] = (u, torch.randn(2, module.in_features, generator=gen))
    return quantize_blocks(model, deltas).eval()


@torch.no_grad()
def dense(model: VQTransformer, ids: list[int], pos: torch.Tensor):
    """The dense reference on the same ids and position ids. With ACM MLPs, ``gate_slack`` is set
    too: per ACM layer (T,), how far the nearest cumulative gate probability is from the
    threshold (a gate tie where it is ~0, the analogue of a code margin)."""
    slack: list[torch.Tensor] = []

    def record(module, args, output):
        cum = module.gate(args[0]).softmax(-1).float().cumsum(-1)[..., :-1]
        slack.append((cum - module.acm.threshold).abs().amin(-1)[0])

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, AcmMlp)]
    try:
        out = model(torch.tensor([ids]), pos.clone()[None], return_attn=True)
    finally:
        for h in handles:
            h.remove()
    out.gate_slack = slack
    return out
