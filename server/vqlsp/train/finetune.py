"""VQ-aware fine-tuning: make quantization cheap in accuracy and edits local.

The student is the VQ model with low-rank adapters on q, k, v, o (``lora.py``)
and trainable codebooks; the teacher is the same weights with the adapters off
and VQ off, i.e. the dense base model, so no second copy is held. Per step, on
windows of training text:

    loss = w_hidden * relMSE(student final states, teacher's)          distillation
         + w_logits * KL(teacher || student) next-token distributions   (sampled positions)
         + w_vq     * sum over layers of VQ-VAE codebook + commitment loss (straight-through)
         + w_margin * margin_loss                                       widen code margins
         + w_flip   * flip_loss(batch, copy with one token replaced)    keep edits local
         + w_task   * the heads' cross-entropy on labelled text          keep what the heads read
                                                                        (``supervision.py``)

The student reads randomly jittered position ids (gaps and duplicates) on a
fraction of the batches while the teacher reads exact ones, so the engine's
``stable`` policy costs no accuracy.

Runs on CPU or one GPU as is, and on several through ``accelerate launch`` (the
``Accelerator`` wraps the model in DDP; nothing here changes). Batches are drawn
from a generator seeded by (seed, step), so a run resumed from its last
checkpoint (``state/``: trainable tensors, optimizer, step) continues exactly
(unless a ``time_limit_s`` shaped the learning-rate schedule).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..model.transformer import VQTransformer
from .lora import add_lora, lora_disabled, lora_targets
from .losses import distillation, flip_loss, jittered_positions, margin_loss, replaced_copy
from .supervision import LabelledBatch, LabelledText, task_loss


@dataclass
class FinetuneConfig:
    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3  # adapters and codebooks
    warmup: int = 20  # linear warm-up steps, then cosine decay to 10%
    lora_rank: int = 16
    lora_mlp: bool = False  # adapters on the MLP projections too (not only q, k, v, o)
    w_hidden: float = 1.0
    w_logits: float = 0.5
    logit_positions: int = 32  # positions per sequence whose next-token KL is taken (vocab is 49k)
    w_vq: float = 1.0
    w_margin: float = 0.0
    margin_gamma: float = 0.05  # target margin, in units of the layer's mean head-output norm
    w_flip: float = 0.0
    flip_gamma: float = 0.02
    flip_drift: float = 0.1
    w_task: float = 0.0
    task_docs: int = 8  # labelled articles per step (task term)
    task_span_docs: int = 8  # labelled sentiment documents per step (task term)
    # where the task term's heads start: "fitted" (the heads the model carries, fitted on the same
    # training split, so the term starts near its floor) or "zero" (chance; the term starts at ln K)
    task_heads: str = "fitted"
    jitter: float = 0.5  # fraction of steps whose student positions are jittered
    p_duplicate: float = 0.05
    p_gap: float = 0.05
    max_gap: int = 3
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    seed: int = 0
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, none on CPU
    time_limit_s: float | None = None  # stop (and checkpoint) after this long; the schedule then follows time


def trainable_parameters(model: VQTransformer) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def prepare_student(model: VQTransformer, cfg: FinetuneConfig) -> None:
    """Adapters on the attention projections (and the MLP's, with ``lora_mlp``) and trainable
    codebooks, in the layers that run (and the heads, for the task term)."""
    add_lora(model, cfg.lora_rank, targets=lora_targets(model.cfg, cfg.lora_mlp))
    for i, block in enumerate(model.blocks):
        keep = i < model.cfg.depth
        for p in block.parameters():
            if p.requires_grad and not keep:
                p.requires_grad_(False)
        block.vq.codebook.requires_grad_(keep)
    if cfg.w_task:
        if cfg.task_heads not in ("fitted", "zero"):
            raise ValueError(f"task_heads must be 'fitted' or 'zero', not {cfg.task_heads!r}")
        for head in (model.document_head, model.span_head):
            if head is None:
                raise ValueError("the task term (w_task) trains both heads; the model must carry them")
            if cfg.task_heads == "zero":
                with torch.no_grad():
                    head.linear.weight.zero_()
                    head.linear.bias.zero_()
            head.requires_grad_(True)
    model.train()


def lr_factor(cfg: FinetuneConfig, step: int, elapsed_s: float) -> float:
    """Linear warm-up, then cosine decay to 10% over the run (steps, or the time limit if that comes first)."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.time_limit_s:
        progress = max(progress, elapsed_s / cfg.time_limit_s)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def step_loss(
    raw: VQTransformer,
    student,
    ids: torch.Tensor,
    cfg: FinetuneConfig,
    g: torch.Generator,
    task: LabelledBatch | None = None,
) -> dict:
    """All loss terms for one batch of ids (B, T); ``student`` is ``raw`` or its DDP wrapper.

    One student forward runs the batch, its edited copy (flip term) and the labelled rows of
    ``task`` (task term, padded to T) together, so DDP sees one forward per backward.
    """
    b, t = ids.shape
    exact = torch.arange(t, device=ids.device).expand(b, t)
    jitter = bool(torch.rand((), generator=g) < cfg.jitter)

    def positions(n: int) -> torch.Tensor:
        if not jitter:
            return exact[:1].expand(n, t)
        pos = jittered_positions(n, t, p_duplicate=cfg.p_duplicate, p_gap=cfg.p_gap, max_gap=cfg.max_gap, generator=g)
        return pos.to(ids.device)

    pos = positions(b)
    sel = torch.randint(t, (min(cfg.logit_positions, t),), generator=g).to(ids.device)
    with torch.no_grad(), lora_disabled(raw):
        teacher = raw(ids, exact, vq=False)
        t_logits = raw.logits(teacher.hidden[:, sel]) if cfg.w_logits else None
    rows, row_pos = [ids], [pos]
    if cfg.w_flip:
        edited, at = replaced_copy(ids, generator=g)
        rows.append(edited.to(ids.device))
        row_pos.append(pos)
    if task is not None:
        # right-padded to the window: causal attention keeps the padding out of the examples' states
        # (it only adds a few rows to the codebook/commitment average)
        rows.append(task.ids.to(ids.device))
        row_pos.append(positions(len(task.ids)))
    out = student(torch.cat(rows), torch.cat(row_pos), vq=True, return_attn=bool(cfg.w_flip or cfg.w_margin))
    hidden = out.hidden[:b]
    s_logits = raw.logits(hidden[:, sel]) if cfg.w_logits else None
    terms = {}
    terms["hidden"], terms["logits"] = distillation(hidden, teacher.hidden, s_logits, t_logits)
    terms["vq"] = out.vq_loss if out.vq_loss is not None else hidden.new_zeros(())
    codebooks = [blk.vq.codebook for blk in raw.blocks[: raw.cfg.depth]]
    if cfg.w_margin:
        terms["margin"] = margin_loss([o[:b] for o in out.attn], codebooks, cfg.margin_gamma)
    if cfg.w_flip:
        terms["flip"] = flip_loss(
            [o[:b] for o in out.attn], [o[b : 2 * b] for o in out.attn], codebooks, at,
            gamma=cfg.flip_gamma, drift_weight=cfg.flip_drift,
        )
    if task is not None:
        terms["task"] = task_loss(raw, out.hidden[-len(task.ids) :], task)
    weights = {"hidden": cfg.w_hidden, "logits": cfg.w_logits, "vq": cfg.w_vq, "margin": cfg.w_margin,
               "flip": cfg.w_flip, "task": cfg.w_task}
    terms["loss"] = sum(weights[k] * v.float() for k, v in terms.items())
    return terms


def finetune(
    model: VQTransformer,
    windows: torch.Tensor,
    cfg: FinetuneConfig,
    out: Path,
    *,
    labelled: LabelledText | None = None,
    progress: bool = True,
) -> list[dict]:
    """Fine-tune ``model`` in place on token windows (N, T); checkpoints and resumes under ``out/state``.

    ``labelled`` is the training text of the task term (needed when ``cfg.w_task`` > 0).

    Leaves the adapters attached (``lora.merge_lora`` folds them in). Returns the logged history.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "no"
    accelerator = Accelerator(
        mixed_precision=precision, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
    )
    if cfg.w_task and labelled is None:
        raise ValueError("the task term (w_task) needs labelled training text")
    torch.manual_seed(cfg.seed)
    model.to(accelerator.device)
    prepare_student(model, cfg)
    params = trainable_parameters(model)
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=0.0)
    state = out / "state"
    start, history = _resume(state, model, opt)
    student, opt = accelerator.prepare(model, opt)
    per_rank = max(1, cfg.batch_size // accelerator.num_processes)
    bar = tqdm(range(start, cfg.steps), desc="VQ-aware fine-tuning", initial=start, total=cfg.steps,
               disable=not (progress and accelerator.is_main_process))
    started = time.monotonic()
    for step in bar:
        if cfg.time_limit_s is not None and time.monotonic() - started > cfg.time_limit_s:
            if accelerator.is_main_process:
                _save_state(state, model, opt, step, history, cfg)
            history.append({"stopped_at_time_limit": step})
            break
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(cfg, step, time.monotonic() - started)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(windows), (cfg.batch_size,), generator=g)
        idx = idx[accelerator.process_index * per_rank : (accelerator.process_index + 1) * per_rank]
        task = None
        if labelled is not None and cfg.w_task:
            # each process its own labelled rows (its share of the batch), from a seed of (step, process)
            tg = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) * 1024 + accelerator.process_index)
            share = accelerator.num_processes
            task = labelled.sample(max(1, cfg.task_docs // share), max(1, cfg.task_span_docs // share),
                                   windows.shape[1], tg)
        with accelerator.autocast():
            terms = step_loss(model, student, windows[idx].to(accelerator.device), cfg, g, task)
        accelerator.backward(terms["loss"])
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(list(params.values()), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        record = {"step": step + 1, **{k: round(float(v.detach()), 5) for k, v in terms.items()}}
        history.append(record)
        bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k != "step"})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                _save_state(state, model, opt, step + 1, history, cfg)
    model.eval()
    return history


def _save_state(state: Path, model: VQTransformer, opt, step: int, history: list, cfg: FinetuneConfig) -> None:
    state.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().float().cpu().contiguous() for n, p in trainable_parameters(model).items()}
    save_file(tensors, str(state / "trainable.safetensors"))
    torch.save({"optimizer": opt.state_dict()}, state / "optimizer.pt")
    (state / "progress.json").write_text(json.dumps({"step": step, "config": asdict(cfg), "history": history}))


def _resume(state: Path, model: VQTransformer, opt) -> tuple[int, list[dict]]:
    progress = state / "progress.json"
    if not progress.is_file():
        return 0, []
    saved = json.loads(progress.read_text())
    tensors = load_file(str(state / "trainable.safetensors"))
    params = trainable_parameters(model)
    if set(tensors) != set(params):
        raise ValueError(f"{state}: saved trainable tensors do not match this run's (different config?)")
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor)
    extra = torch.load(state / "optimizer.pt", map_location=model.device, weights_only=True)
    opt.load_state_dict(extra["optimizer"])
    return int(saved["step"]), list(saved["history"])
