"""The three training stages of Adaptive Computation Modules (arXiv 2312.10193), on a VQ model.

1. ``distil_learners``: every layer's learners learn to reproduce the original MLP's
   output from its input, with any number of them (the loss averages the error of each
   prefix of learners). The inputs and outputs are captured once from the original model
   (``capture``), so the layers train independently, all at once.
2. ``train_gates``: each token's label is the fewest learners whose output is within a
   relative ``tolerance`` of the original MLP's (all N when none is); each gate learns its
   layer's labels by cross-entropy. (The authors label a token by where adding a learner
   stops reducing the error by a factor; we use the distance to the original output
   directly, which is what the issue asks and one number to choose.)
3. ``finetune_end_to_end``: the whole ACM model (learners and gates; attention, codebooks
   and heads stay frozen) is trained with hard Gumbel-softmax gate samples on
   * relative MSE of its final states against the original VQ model's (distillation),
   * the heads' cross-entropy on labelled text (the task, ``supervision.task_loss``),
   * the compute-budget loss |mean learners / N - target / N| (the authors' L1 form),
   * the paper's diversity term: minus the mean pairwise |difference| of the sequences'
     mean learners / N, so that sequences do not all get the same compute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..model.acm import AcmMlp, acm_modules, learners_for, threshold_for_mean
from ..model.layers import Mlp
from ..model.transformer import VQTransformer
from .finetune import _resume, _save_state
from .supervision import LabelledText, task_loss


@dataclass
class AcmTrainConfig:
    """The CPU scale by default: sized for a loaded 2-core machine (about an hour with the evaluation)."""

    learners: int = 4  # N learners per MLP, each of width d_ff / N
    gate_hidden: int = 0  # 0: linear gates
    capture_windows: int = 16  # windows whose MLP inputs/outputs stages 1-2 train on
    window_tokens: int = 128
    distil_steps: int = 20
    distil_rows: int = 256  # rows per layer per distillation step
    distil_lr: float = 2e-4
    tolerance: float = 0.25  # stage 2 label: fewest learners within this relative error of the MLP
    gate_steps: int = 200
    gate_lr: float = 3e-3
    e2e_steps: int = 40
    e2e_windows: int = 1  # text windows per end-to-end step (distillation)
    e2e_task_docs: int = 1  # labelled articles and span documents per step (task term)
    e2e_lr: float = 5e-5
    gate_e2e_lr: float = 1e-3
    target_learners: float = 2.0  # budget of stage 3: mean learners per token
    w_hidden: float = 1.0
    w_task: float = 1.0
    w_budget: float = 1.0
    w_diversity: float = 0.1
    checkpoint_every: int = 2
    # budgets the trade-off evaluates: gate thresholds, and target mean learners per token (each
    # turned into the threshold that gives it on training windows, ``calibrate_thresholds``)
    thresholds: tuple[float, ...] = ()
    target_means: tuple[float, ...] = (1.5, 2.5, 3.5)
    # the trade-off's test set: a seeded subset (None: the whole test split) and the article length read
    eval_docs: int | None = 100
    eval_span_docs: int | None = 30  # packed sentiment documents of ~10 snippets each
    eval_doc_tokens: int = 128
    seed: int = 0


@dataclass
class Captured:
    """Per ACM layer, the original MLP's inputs (rows, D) and outputs (rows, D)."""

    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]


@torch.no_grad()
def capture(model: VQTransformer, windows: torch.Tensor, layers: int, batch: int = 4) -> Captured:
    """Run ``model`` (VQ on) over windows (N, T) and keep the input and output of each of the
    first ``layers`` blocks' MLP, every row of every window."""
    ins: list[list[torch.Tensor]] = [[] for _ in range(layers)]
    outs: list[list[torch.Tensor]] = [[] for _ in range(layers)]
    handles = []
    for i in range(layers):
        def hook(module, args, output, i=i):
            ins[i].append(args[0].reshape(-1, args[0].shape[-1]).float().cpu())
            outs[i].append(output.reshape(-1, output.shape[-1]).float().cpu())
        handles.append(model.blocks[i].mlp.register_forward_hook(hook))
    saved_depth = model.cfg.exit_layer
    model.cfg.exit_layer = layers
    try:
        for start in range(0, len(windows), batch):
            model(windows[start : start + batch].to(model.device), vq=True)
    finally:
        model.cfg.exit_layer = saved_depth
        for h in handles:
            h.remove()
    return Captured([torch.cat(x) for x in ins], [torch.cat(y) for y in outs])


@torch.no_grad()
def neuron_importance(mlp: Mlp, inputs: torch.Tensor) -> torch.Tensor:
    """Mean |activation| of each hidden neuron on ``inputs`` times the norm of its output weights:
    how much each neuron contributes to the output, so the first learner gets the most."""
    if mlp.kind == "relu":
        h, down = F.relu(mlp.fc1(inputs)), mlp.fc2
    else:
        h, down = F.silu(mlp.gate(inputs)) * mlp.up(inputs), mlp.down
    return h.abs().mean(0) * down.weight.norm(dim=0)


@torch.no_grad()
def calibrate_thresholds(model: VQTransformer, windows: torch.Tensor, targets: tuple[float, ...]) -> list[float]:
    """For each target mean learners per token, the gate threshold that gives it on ``windows``
    (gate probabilities recorded from one forward at the model's current threshold)."""
    probs: list[list[torch.Tensor]] = [[] for _ in acm_modules(model)]
    handles = [
        acm.register_forward_hook(lambda m, args, out, i=i: probs[i].append(m.gate(args[0]).softmax(-1).flatten(0, -2)))
        for i, acm in enumerate(acm_modules(model))
    ]
    try:
        for start in range(0, len(windows), 4):
            model(windows[start : start + 4].to(model.device), vq=True)
    finally:
        for h in handles:
            h.remove()
    layers = [torch.cat(p) for p in probs]
    return [round(threshold_for_mean(layers, target), 4) for target in targets]


def prefix_errors(acm: AcmMlp, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Relative error ||y_k - y|| / ||y|| of each prefix of learners: (rows, D) -> (rows, N)."""
    pred = acm.prefixes(inputs)  # (rows, N, D)
    return (pred - outputs.unsqueeze(1)).norm(dim=-1) / outputs.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def distil_learners(model: VQTransformer, data: Captured, cfg: AcmTrainConfig, progress: bool = True) -> list[dict]:
    """Stage 1: every layer's learners, all layers at once, on the captured rows."""
    acms = acm_modules(model)
    params = [p for acm in acms for p in acm.learners.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.distil_lr)
    g = torch.Generator().manual_seed(cfg.seed)
    history = []
    device = model.device
    for step in tqdm(range(cfg.distil_steps), desc="ACM stage 1: distil learners", disable=not progress):
        losses = []
        for acm, x, y in zip(acms, data.inputs, data.outputs):
            idx = torch.randint(len(x), (cfg.distil_rows,), generator=g)
            xb, yb = x[idx].to(device), y[idx].to(device)
            pred = acm.prefixes(xb)  # (rows, N, D)
            losses.append((pred - yb.unsqueeze(1)).pow(2).mean() / yb.pow(2).mean().clamp_min(1e-12))
        loss = torch.stack(losses).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step + 1 == cfg.distil_steps:
            history.append({"step": step + 1, "relative_mse": round(float(loss.detach()), 5)})
    for p in params:
        p.requires_grad_(False)
    return history


@torch.no_grad()
def gate_labels(acm: AcmMlp, inputs: torch.Tensor, outputs: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Fewest learners (0-based: k - 1) whose output is within ``tolerance`` of the original's; N - 1 if none."""
    errors = torch.cat([prefix_errors(acm, x, y) for x, y in zip(inputs.split(4096), outputs.split(4096))])
    ok = errors <= tolerance
    ok[:, -1] = True
    return ok.float().argmax(-1)  # the first prefix that is close enough


def train_gates(model: VQTransformer, data: Captured, cfg: AcmTrainConfig, progress: bool = True) -> dict:
    """Stage 2: each gate learns its layer's labels (cross-entropy, all rows every step)."""
    report: dict = {"label_mean_learners": [], "gate_accuracy": [], "mean_learners_at_0.5": []}
    device = model.device
    for acm, x, y in tqdm(list(zip(acm_modules(model), data.inputs, data.outputs)), desc="ACM stage 2: gates",
                          disable=not progress):
        x = x.to(device)
        labels = gate_labels(acm, x, y.to(device), cfg.tolerance)
        acm.gate.requires_grad_(True)
        opt = torch.optim.Adam(acm.gate.parameters(), lr=cfg.gate_lr)
        for _ in range(cfg.gate_steps):
            loss = F.cross_entropy(acm.gate(x), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        acm.gate.requires_grad_(False)
        with torch.no_grad():
            probs = acm.gate(x).softmax(-1)
            report["label_mean_learners"].append(round(float(labels.float().mean()) + 1, 3))
            report["gate_accuracy"].append(round(float((probs.argmax(-1) == labels).float().mean()), 3))
            report["mean_learners_at_0.5"].append(round(float(learners_for(probs, 0.5).float().mean()), 3))
    return report


def end_to_end_terms(
    student: VQTransformer, teacher: VQTransformer, ids: torch.Tensor, task, cfg: AcmTrainConfig
) -> dict[str, torch.Tensor]:
    """All loss terms of one stage-3 step (``student`` in training mode: Gumbel gates)."""
    b = len(ids)
    with torch.no_grad():
        target = teacher(ids, vq=True).hidden
    rows = torch.cat([ids, task.ids.to(ids.device)])
    out = student(rows, vq=True)
    hidden = out.hidden[:b]
    terms = {"hidden": (hidden - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)}
    terms["task"] = task_loss(student, out.hidden[b:], task)
    acms = acm_modules(student)
    n = acms[0].n_learners
    steps = torch.arange(1, n + 1, device=ids.device, dtype=torch.float32)
    # expected learners per token under the sampled (straight-through) choices: (layers, B, T)
    used = torch.stack([acm.last_gate @ steps for acm in acms]) / n
    terms["budget"] = (used.mean() - cfg.target_learners / n).abs()
    per_sequence = used.mean(dim=(0, 2))  # (B,)
    terms["diversity"] = -(per_sequence.unsqueeze(0) - per_sequence.unsqueeze(1)).abs().mean()
    terms["mean_learners"] = used.detach().mean() * n
    weights = {"hidden": cfg.w_hidden, "task": cfg.w_task, "budget": cfg.w_budget, "diversity": cfg.w_diversity}
    terms["loss"] = sum(w * terms[k] for k, w in weights.items())
    return terms


def finetune_end_to_end(
    student: VQTransformer, teacher: VQTransformer, windows: torch.Tensor, labelled: LabelledText,
    cfg: AcmTrainConfig, out: Path, progress: bool = True,
) -> list[dict]:
    """Stage 3, resumable from ``out/state`` (trainable tensors, optimizer, step, history)."""
    torch.manual_seed(cfg.seed)
    student.requires_grad_(False)
    acms = acm_modules(student)
    for acm in acms:
        acm.requires_grad_(True)
    learners = [p for acm in acms for p in acm.learners.parameters()]
    gates = [p for acm in acms for p in acm.gate.parameters()]
    opt = torch.optim.Adam([{"params": learners, "lr": cfg.e2e_lr}, {"params": gates, "lr": cfg.gate_e2e_lr}])
    state = out / "state"
    start, history = _resume(state, student, opt)
    student.train()
    teacher.eval()
    started = time.monotonic()
    bar = tqdm(range(start, cfg.e2e_steps), desc="ACM stage 3: end to end", initial=start, total=cfg.e2e_steps,
               disable=not progress)
    for step in bar:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # the Gumbel noise: a resumed run draws the same
        idx = torch.randint(len(windows), (cfg.e2e_windows,), generator=g)
        task = labelled.sample(cfg.e2e_task_docs, cfg.e2e_task_docs, windows.shape[1], g)
        terms = end_to_end_terms(student, teacher, windows[idx].to(student.device), task, cfg)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(learners + gates, 1.0)
        opt.step()
        record = {"step": step + 1, **{k: round(float(v.detach()), 5) for k, v in terms.items()},
                  "seconds": round(time.monotonic() - started, 1)}
        history.append(record)
        bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k not in ("step", "seconds")})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.e2e_steps:
            _save_state(state, student, opt, step + 1, history, cfg)
    student.requires_grad_(False)
    student.eval()
    return history


__all__ = [
    "AcmTrainConfig", "Captured", "calibrate_thresholds", "capture", "distil_learners", "end_to_end_terms", "finetune_end_to_end",
    "gate_labels", "neuron_importance", "prefix_errors", "train_gates",
]
