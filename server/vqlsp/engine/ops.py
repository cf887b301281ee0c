"""One operation counter for every strategy (dense, prefix cache, incremental).

Unit: one multiply-add ("op"), counted for the work that grows with the model:

* projections, per row run: q/k/v ``D*(H + 2*Hkv)*Dh``, W_o ``H*Dh*D``, the MLP
  ``2*D*F`` (ReLU) or ``3*D*F`` (SwiGLU), and OPT-350m's project_in/out; an ACM MLP
  (``model/acm.py``) costs its gate per row plus ``MLP / N`` per learner it runs;
* attention, per query row ``i`` attending its ``i + 1`` causal keys:
  ``2*H*Dh*(i + 1)`` (q.k scores and the weighted sum of values), whatever kernel
  computes it (a masked kernel that also touches later keys is not charged extra);
* VQ nearest-code search, per row searched: ``H*K*Dh`` (the q.c products);
* incremental accumulator updates, per updated row: ``2*H*Dh`` per changed key
  (score and value term), plus the ``H*Dh`` of the margin check ``||o' - o||``.

Not counted, for anyone: norms, softmax exponentials, residual adds, gathers and
scatters, embedding lookups and the classification heads (all O(D) per row or
less). The counts are exact for the work each strategy asks for; they are what
the paper's "operations" compare, and the benchmark reports them beside the
measured wall time, never instead of it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

CATEGORIES = ("qkv", "out", "mlp", "attention", "vq", "accumulate", "io")


@dataclass(frozen=True)
class CostModel:
    """Per-row costs of one model's layers, in multiply-adds."""

    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_ff: int
    mlp_mats: int  # 2 (ReLU) or 3 (SwiGLU)
    codebook_size: int
    io_proj: int  # project_in + project_out per row (OPT-350m), else 0
    learners: int = 0  # ACM learners per MLP (0: plain MLPs)
    gate: int = 0  # an ACM gate, per row

    @classmethod
    def of(cls, cfg) -> CostModel:
        e, acm = cfg.embed_proj_dim, cfg.acm
        if acm is None:
            learners = gate = 0
        else:
            h = acm.gate_hidden
            learners, gate = acm.learners, cfg.d_model * h + h * acm.learners if h else cfg.d_model * acm.learners
        return cls(
            cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_ff,
            3 if cfg.mlp == "swiglu" else 2, cfg.vq.codebook_size, 2 * e * cfg.d_model if e else 0, learners, gate,
        )

    @property
    def qkv(self) -> int:
        return self.d_model * (self.n_heads + 2 * self.n_kv_heads) * self.d_head

    @property
    def out(self) -> int:
        return self.n_heads * self.d_head * self.d_model

    @property
    def mlp(self) -> int:
        return self.mlp_mats * self.d_model * self.d_ff

    @property
    def learner(self) -> int:
        """One ACM learner, per row."""
        return self.mlp // self.learners

    @property
    def vq(self) -> int:
        return self.n_heads * self.codebook_size * self.d_head

    def attention(self, key_count: int) -> int:
        """Attention over ``key_count`` (query, key) pairs in total."""
        return 2 * self.n_heads * self.d_head * key_count

    def accumulate(self, rows: int, keys: int) -> int:
        return rows * self.n_heads * self.d_head * (2 * keys + 1)


def causal_pairs(first: int, last: int) -> int:
    """Sum of (i + 1) for query rows i in [first, last): their causal key counts."""
    return (last * (last + 1) - first * (first + 1)) // 2


class OpCounter(Counter):
    """Multiply-adds by category (see ``CATEGORIES``)."""

    @property
    def total(self) -> int:
        return sum(self.values())

    def rows(self, cost: CostModel, qkv: int = 0, finish: int = 0, learners: int | None = None) -> None:
        """Charge ``qkv`` rows through q/k/v and ``finish`` rows through W_o and the MLP; with an
        ACM MLP, ``learners`` is how many learners those rows ran in all (``acm.learners_run``)."""
        self["qkv"] += qkv * cost.qkv
        self["out"] += finish * cost.out
        if learners is None:
            self["mlp"] += finish * cost.mlp
        else:
            self["mlp"] += learners * cost.learner + finish * cost.gate


def dense_ops(
    cost: CostModel, n: int, layers: int, vq: bool = True, learners: list[int | None] | None = None
) -> OpCounter:
    """What one dense forward over n tokens costs (``learners``: per layer, the learners its ACM
    MLP ran over the n rows, None for a plain MLP; ``acm.learners_run``)."""
    ops = OpCounter()
    for layer in range(layers):
        ops.rows(cost, qkv=n, finish=n, learners=learners[layer] if learners else None)
    ops["attention"] = layers * cost.attention(causal_pairs(0, n))
    if vq:
        ops["vq"] = layers * n * cost.vq
    if cost.io_proj:
        ops["io"] = n * cost.io_proj
    return ops
