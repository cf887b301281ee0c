"""``vqlsp train``: the whole recipe of the default model, in resumable stages.

    out/kmeans/      1. k-means codebooks on real activations (+ heads on those frozen features)
    out/finetune/    2. VQ-aware fine-tuning state (checkpoints every N steps; resumable)
    out/model/       3. the fine-tuned model (adapters folded in, stored as low-rank deltas)
                        + heads fitted on its frozen VQ features: the deliverable checkpoint
    out/eval.json    4. ``vqlsp eval`` of out/model against the dense base
    out/train.json   the configuration, data sizes, per-stage metrics and loss history

Re-running the same command skips finished stages and resumes fine-tuning from
its last checkpoint. ``TrainConfig.named("cpu" | "gpu")`` are the two scales: a
laptop-CPU run of minutes to an hour, and the full run (all training data, more
steps) for a GPU. Everything is seeded.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.config import VQConfig
from ..model.transformer import VQTransformer
from .codebooks import fit_codebooks
from .evaluate import evaluate_model, long_documents
from .finetune import FinetuneConfig, finetune
from .lora import merge_lora
from .resumable import ResumableReport
from .supervision import LabelledText
from .tasks import DataScale, TaskData, extract, fit_document_head, fit_span_head

# The settings the shipped default was trained with (its model card has the sweep they won):
# K, depth and window on top of the scale, and the fine-tuning losses' weights.
RECIPE = {"k": 32, "exit_layer": 12, "window_tokens": 256, "w_flip": 20.0, "w_margin": 2.0, "w_vq": 5.0,
          "w_task": 1.0}


@dataclass
class TrainConfig:
    scale: DataScale = field(default_factory=DataScale)
    k: int = 64  # codes per (layer, head)
    exit_layer: int | None = None  # heads read after this many layers (None: all)
    window_tokens: int = 256  # length of the training text windows (codebooks and fine-tuning)
    codebook_windows: int = 32  # windows whose activations the k-means sees
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    agreement_docs: int = 16
    agreement_edits: int = 16
    reuse_tokens: int = 1024
    reuse_edits: int = 20
    seed: int = 0

    @classmethod
    def named(cls, scale: str, **overrides) -> TrainConfig:
        """The shipped default's recipe (``RECIPE``) at a scale, with ``overrides`` on top."""
        if scale == "cpu":
            cfg = cls(DataScale.named("cpu"), codebook_windows=24, finetune=FinetuneConfig(steps=150, batch_size=4),
                      agreement_docs=8, agreement_edits=8, reuse_edits=8)
        elif scale == "gpu":
            cfg = cls(DataScale.named("gpu"), codebook_windows=64,
                      finetune=FinetuneConfig(steps=1200, batch_size=16, checkpoint_every=200),
                      agreement_docs=32, agreement_edits=32, reuse_edits=40)
        else:
            raise ValueError(f"unknown scale {scale!r}; choose cpu or gpu")
        overrides = {**RECIPE, **overrides}
        ft = {k: overrides.pop(k) for k in list(overrides) if k in FinetuneConfig.__dataclass_fields__}
        for key, value in overrides.items():
            setattr(cfg, key, value)
        for key, value in ft.items():
            setattr(cfg.finetune, key, value)
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


def training_windows(data_texts: list[list[int]], length: int, count: int | None, seed: int) -> torch.Tensor:
    """Windows (N, length) cut from token id lists in a seeded order (documents joined end to end)."""
    order = list(range(len(data_texts)))
    random.Random(seed).shuffle(order)
    stream = [t for i in order for t in data_texts[i]]
    n = len(stream) // length
    if n == 0:
        raise ValueError(f"need at least {length} tokens of training text, got {len(stream)}")
    if count is not None:
        n = min(n, count)
    return torch.tensor(stream[: n * length]).view(n, length)


def _fit_heads(model: VQTransformer, data: TaskData, progress: bool) -> dict:
    """Fit both heads on the model's frozen VQ features (at its depth) and attach them."""
    depth = model.cfg.depth
    feats = extract(model, data, [depth], vq=True, progress=progress)
    doc = fit_document_head(feats, data, depth, model.hidden_dim)
    span = fit_span_head(feats, depth, model.hidden_dim)
    model.set_heads(doc.head.to(model.device), span.head.to(model.device))  # type: ignore[arg-type]
    return {"document": doc.metrics, "span": span.metrics}


def run_pipeline(
    out: Path,
    cfg: TrainConfig,
    *,
    load_base: Callable[[], VQTransformer],
    base_source: str,
    data: TaskData,
    text_ids: list[list[int]],
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) every stage; returns the training report (also written to out/train.json)."""
    out.mkdir(parents=True, exist_ok=True)
    report = ResumableReport(out / "train.json")
    report["config"] = cfg.to_dict()
    report["data"] = data.describe()

    torch.manual_seed(cfg.seed)
    windows = training_windows(text_ids, cfg.window_tokens, None, cfg.seed)
    report["data"]["training_windows"] = list(windows.shape)
    base = load_base()

    def checkpoint(model: VQTransformer, directory: Path, info: dict, delta_rank: int | None = None) -> None:
        save_checkpoint(model.cpu(), directory, base_source=base_source, external_base=True, info=info,
                        delta_rank=delta_rank, base_model=base)
        model.to(device)

    # 1. k-means codebooks, and heads on the k-means model (the "before fine-tuning" model)
    kmeans_dir = out / "kmeans"
    if not (kmeans_dir / "config.json").is_file():
        started = time.time()
        model = load_base().to(device)
        model.cfg.exit_layer = cfg.exit_layer
        model.set_vq(VQConfig(codebook_size=cfg.k))
        cb_windows = windows[torch.randperm(len(windows), generator=torch.Generator().manual_seed(cfg.seed))]
        errors = fit_codebooks(model, cb_windows[: cfg.codebook_windows], seed=cfg.seed, progress=progress)
        heads = _fit_heads(model, data, progress)
        report["kmeans"] = {"relative_quantization_error": [round(e, 4) for e in errors], "heads": heads,
                            "seconds": round(time.time() - started, 1)}
        checkpoint(model, kmeans_dir, {"stage": "k-means codebooks + heads", **report["kmeans"]})
        report.save()
        log(f"k-means: document {heads['document']['test_acc']:.4f}, span {heads['span']['test_acc']:.4f}")

    # 2. VQ-aware fine-tuning (resumes from out/finetune/state)
    model_dir = out / "model"
    if not (model_dir / "config.json").is_file():
        started = time.time()
        model = load_checkpoint(kmeans_dir, device)
        labelled = LabelledText.from_tasks(data) if cfg.finetune.w_task else None
        history = finetune(model, windows, cfg.finetune, out / "finetune", labelled=labelled, progress=progress)
        merge_lora(model)
        for p in model.parameters():
            p.requires_grad_(False)
        heads = _fit_heads(model.eval(), data, progress)
        report["finetune"] = {"history_every_10": history[::10] + history[-1:], "heads": heads,
                              "seconds": round(time.time() - started, 1)}
        checkpoint(model, model_dir, {"stage": "VQ-aware fine-tuning + heads", "heads": heads},
                   delta_rank=cfg.finetune.lora_rank)
        report.save()
        log(f"fine-tuned: document {heads['document']['test_acc']:.4f}, span {heads['span']['test_acc']:.4f}")

    # 3. evaluation against the dense base, policy agreement, reuse
    if "eval" not in report:
        model = load_checkpoint(model_dir, device)
        kmeans = load_checkpoint(kmeans_dir, device)
        reuse_docs = long_documents(data.doc_ids["test"], cfg.reuse_tokens, 4)
        report["eval"] = evaluate_model(
            model, base.to(device), data, agreement_docs=cfg.agreement_docs, agreement_edits=cfg.agreement_edits,
            reuse_docs=reuse_docs, reuse_edits=cfg.reuse_edits, seed=cfg.seed, progress=progress,
        )
        if reuse_docs:
            from .reuse import reuse_profile

            report["eval"]["reuse_kmeans"] = reuse_profile(kmeans, reuse_docs, cfg.reuse_edits, seed=cfg.seed)
        (out / "eval.json").write_text(json.dumps(report["eval"], indent=1) + "\n")
        report.save()
    return report
