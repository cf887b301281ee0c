"""Adaptive Computation Modules: an MLP whose per-token cost is chosen by a gate.

Wojcik, Devoto, Pustelnik, Minervini, Scardapane, *Adaptive Computation Modules:
Granular Conditional Computation for Efficient Inference*, arXiv 2312.10193 (AAAI 2025).
The MLP becomes N *learners*, each an MLP of the same form (ReLU for OPT, SwiGLU for
Llama) of width d_ff / N; running the first k of them and summing their outputs gives
the module's output at cost k / N of the MLP. A small gate reads the same input and
picks k per token, so easy tokens run one learner and hard ones all N.

Choices of ours where the paper and the authors' code differ or are silent:

* k runs over 1..N (the authors also allow 0 learners); at least one learner always runs.
* The learners start as the original MLP's neurons, sorted by importance and cut into N
  groups (``from_mlp``), so running all N is the original MLP exactly; distillation then
  makes each prefix good on its own (the authors train learners from random weights).
* The budget knob (``ACMConfig.threshold``, read at every call): a token runs the fewest
  learners whose cumulative gate probability reaches the threshold. The authors take the
  argmax. A cumulative probability exactly equal to the threshold counts as reaching it,
  so exact ties go to fewer learners, deterministically, like VQ code ties (lowest index).

The decision is a function of the row's input alone, so the incremental engine reuses
it with the row and recomputes it only where the row's input changed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ACMConfig, ModelConfig
from .layers import Mlp


class Gate(nn.Module):
    """Per-token logits over how many learners to run: (..., D) -> (..., N), entry j = j + 1 learners."""

    def __init__(self, d_model: int, learners: int, hidden: int):
        super().__init__()
        if hidden:
            self.net: nn.Module = nn.Sequential(nn.Linear(d_model, hidden), nn.ReLU(), nn.Linear(hidden, learners))
        else:
            self.net = nn.Linear(d_model, learners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def learners_for(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fewest learners whose cumulative probability reaches ``threshold``: probs (..., N) -> (...,) long in 1..N."""
    reached = probs.float().cumsum(-1)[..., :-1] >= threshold
    return 1 + (~reached).sum(-1)


class AcmMlp(nn.Module):
    """N learners and a gate in place of a block's MLP.

    ``forward`` runs, per row, only the learners its gate picks and records how many in
    ``last_learners`` (..., long, 1..N), for the engine's op count and for analyses. In
    training mode with gradients on, it instead runs every learner and mixes the prefixes
    with a hard Gumbel-softmax sample of the gate (straight-through), as the paper's
    end-to-end stage does; ``last_gate`` then holds that (differentiable) one-hot choice.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.acm is not None
        self.acm: ACMConfig = cfg.acm  # shared with the model's config: the budget knob is read live
        n = cfg.acm.learners
        self.learners = nn.ModuleList(Mlp(cfg, d_ff=cfg.d_ff // n) for _ in range(n))
        self.gate = Gate(cfg.d_model, n, cfg.acm.gate_hidden)
        self.gumbel_tau = 1.0
        self.last_learners: torch.Tensor | None = None
        self.last_gate: torch.Tensor | None = None

    @property
    def n_learners(self) -> int:
        return len(self.learners)

    def choose(self, x: torch.Tensor) -> torch.Tensor:
        """How many learners each row runs: (..., D) -> (...,) long in 1..N."""
        return learners_for(self.gate(x).softmax(-1), self.acm.threshold)

    def prefixes(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the first k learners for every k: (..., D) -> (..., N, D)."""
        return torch.stack([learner(x) for learner in self.learners], dim=-2).cumsum(-2)

    def run(self, x: torch.Tensor, learners: torch.Tensor) -> torch.Tensor:
        """Rows (R, D) through their first ``learners`` (R,) learners only."""
        out = self.learners[0](x)
        for j in range(1, self.n_learners):
            rows = (learners > j).nonzero().squeeze(1)
            if len(rows) == len(x):
                out = out + self.learners[j](x)
            elif len(rows):
                out = out.index_add(0, rows, self.learners[j](x[rows]))
            else:
                break
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            choice = F.gumbel_softmax(self.gate(x).float(), tau=self.gumbel_tau, hard=True)  # (..., N)
            self.last_gate = choice
            self.last_learners = choice.detach().argmax(-1) + 1
            return (choice.to(x.dtype).unsqueeze(-1) * self.prefixes(x)).sum(-2)
        learners = self.choose(x)
        self.last_learners = learners
        shape = x.shape
        return self.run(x.reshape(-1, shape[-1]), learners.reshape(-1)).view(shape)

    @classmethod
    @torch.no_grad()
    def from_mlp(cls, mlp: Mlp, cfg: ModelConfig, importance: torch.Tensor | None = None) -> AcmMlp:
        """Learners cut from ``mlp``'s neurons, most important first (``importance`` (d_ff,),
        default: the norm of each neuron's output weights); all N together equal ``mlp``."""
        acm = cls(cfg).to(mlp_weight(mlp).device, mlp_weight(mlp).dtype)
        down = mlp.fc2 if mlp.kind == "relu" else mlp.down
        if importance is None:
            importance = down.weight.norm(dim=0)
        order = torch.argsort(importance.float(), descending=True, stable=True)
        width = cfg.d_ff // acm.n_learners
        for j, learner in enumerate(acm.learners):
            idx = order[j * width : (j + 1) * width]
            ins = ("fc1",) if mlp.kind == "relu" else ("gate", "up")
            for name in ins:
                src, dst = getattr(mlp, name), getattr(learner, name)
                dst.weight.copy_(src.weight[idx])
                if src.bias is not None:
                    dst.bias.copy_(src.bias[idx])
            out = learner.fc2 if mlp.kind == "relu" else learner.down
            out.weight.copy_(down.weight[:, idx])
            if down.bias is not None:  # the output bias is added once, by the first learner
                out.bias.copy_(down.bias if j == 0 else torch.zeros_like(down.bias))
        return acm


def mlp_weight(mlp: Mlp) -> torch.Tensor:
    return (mlp.fc1 if mlp.kind == "relu" else mlp.gate).weight


def learners_run(mlp: nn.Module) -> int | None:
    """How many learners ``mlp``'s last call ran over all its rows; None for a plain MLP."""
    return int(mlp.last_learners.sum()) if isinstance(mlp, AcmMlp) and mlp.last_learners is not None else None


def acm_modules(model: nn.Module) -> list[AcmMlp]:
    """The model's ACM MLPs, in block order."""
    return [m for m in model.modules() if isinstance(m, AcmMlp)]


def set_threshold(model, threshold: float) -> None:
    """Set the budget knob of every ACM MLP of ``model`` (they share ``model.cfg.acm``)."""
    if model.cfg.acm is None:
        raise ValueError("the model has no ACM MLPs")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold {threshold} outside (0, 1]")
    model.cfg.acm.threshold = threshold


@torch.no_grad()
def threshold_for_mean(probs: list[torch.Tensor], target: float, iterations: int = 40) -> float:
    """The threshold at which the mean number of learners over gate probabilities ``probs``
    (per layer, (rows, N)) is closest to ``target`` (bisection; the mean grows with it)."""
    lo, hi = 1e-6, 1.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        mean = torch.cat([learners_for(p, mid).float() for p in probs]).mean()
        lo, hi = (mid, hi) if mean < target else (lo, mid)
    return hi


__all__ = ["AcmMlp", "Gate", "acm_modules", "learners_for", "learners_run", "set_threshold", "threshold_for_mean"]
