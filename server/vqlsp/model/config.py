"""Configuration of the normalized VQ transformer (DESIGN.md, "The model").

Every supported architecture (OPT, Llama family) converts into this one form, so
the engine is written once. The dataclasses round-trip through ``config.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Norm = Literal["layernorm", "rmsnorm"]
Mlp = Literal["relu", "swiglu"]
Positions = Literal["learned", "rope"]
ARCHITECTURES = ("opt", "llama")


@dataclass
class VQConfig:
    """Product quantization of each head's attention output."""

    codebook_size: int = 64  # K codes per (layer, head); accuracy vs reuse knob
    commitment: float = 0.25  # weight of the commitment loss (VQ-VAE's beta)
    enabled: bool = True  # a model can carry codebooks and still run dense


@dataclass
class ACMConfig:
    """Adaptive Computation Modules (Wojcik et al., arXiv 2312.10193; ``acm.py``): the MLPs of the
    first ``layers`` blocks are split into ``learners`` learners of width d_ff / learners, and a
    per-token gate picks how many of them run (1..learners)."""

    learners: int = 4
    layers: int = 0  # blocks 0..layers-1 have ACM MLPs (0 is filled in: every block the model runs)
    gate_hidden: int = 0  # 0: a linear gate; > 0: one hidden ReLU layer of this width (the authors' deep gate)
    # the budget knob, at inference time: a token runs the fewest learners whose cumulative gate
    # probability reaches ``threshold`` (0.5: the median of the gate's distribution; lower = cheaper)
    threshold: float = 0.5


@dataclass
class ModelConfig:
    arch: str  # where it came from: "opt" | "llama" (informational; the form is below)
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_head: int
    d_ff: int
    n_kv_heads: int | None = None  # grouped-query attention; None = n_heads
    norm: Norm = "rmsnorm"
    norm_eps: float = 1e-5
    mlp: Mlp = "swiglu"
    positions: Positions = "rope"
    max_positions: int = 2048
    position_offset: int = 0  # OPT's learned position table is indexed at position + 2
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None  # HF rope parameters beyond theta (llama3, linear, ...)
    attn_scale: float = 1.0  # RoPE "attention_factor" (1.0 unless the scaling type sets one)
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    pre_norm: bool = True  # False = OPT-350m's post-LN blocks
    final_norm: bool = True
    embed_proj_dim: int | None = None  # OPT-350m: embeddings live in a smaller space (project_in/out)
    tie_embeddings: bool = True
    exit_layer: int | None = None  # run only the first N layers (early exit for the heads); None = all
    vq: VQConfig = field(default_factory=VQConfig)
    acm: ACMConfig | None = None  # ACM MLPs (None: the plain MLP everywhere)

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r} (vqlsp runs {', '.join(ARCHITECTURES)})")
        if isinstance(self.vq, dict):
            self.vq = VQConfig(**self.vq)
        if isinstance(self.acm, dict):
            self.acm = ACMConfig(**self.acm)
        if self.acm is not None:
            self.check_acm(self.acm)
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.exit_layer is not None and not 1 <= self.exit_layer <= self.n_layers:
            raise ValueError(f"exit_layer={self.exit_layer} outside 1..{self.n_layers}")

    def check_acm(self, acm: ACMConfig) -> None:
        if acm.learners < 1 or self.d_ff % acm.learners:
            raise ValueError(f"acm.learners={acm.learners} must divide d_ff={self.d_ff}")
        if not 0 <= acm.layers <= self.n_layers:
            raise ValueError(f"acm.layers={acm.layers} outside 0..{self.n_layers}")
        if not 0.0 < acm.threshold <= 1.0:
            raise ValueError(f"acm.threshold={acm.threshold} outside (0, 1]")
        if acm.layers == 0:
            acm.layers = self.depth

    def has_acm(self, layer: int) -> bool:
        """Whether block ``layer`` has an ACM MLP."""
        return self.acm is not None and layer < self.acm.layers

    @property
    def depth(self) -> int:
        """How many layers a forward runs (``exit_layer`` or all)."""
        return self.exit_layer or self.n_layers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def tiny(cls, arch: Literal["opt", "llama"] = "llama", **overrides: Any) -> ModelConfig:
        """A small random-weight preset for tests and examples."""
        base: dict[str, Any] = dict(
            vocab_size=256, d_model=64, n_layers=2, n_heads=4, d_head=16, d_ff=128, max_positions=512
        )
        if arch == "opt":
            base.update(
                arch="opt", norm="layernorm", mlp="relu", positions="learned", position_offset=2,
                qkv_bias=True, out_bias=True, mlp_bias=True,
            )
        else:
            base.update(arch="llama", n_kv_heads=2, rope_theta=10000.0)
        base.update(overrides)
        return cls(**base)
