"""``vqlsp train --acm``: the ACM stages on top of a VQ model, resumable like the VQ recipe.

    out/acm-distil/   1. learners cut from each MLP and distilled from it (gates untrained)
    out/acm-gates/    2. + gates trained on "fewest learners within tolerance" labels
    out/acm-e2e/      3. end-to-end state (checkpoints every few steps; resumable)
    out/acm-model/       the ACM model after stage 3: the deliverable checkpoint
    out/acm-eval.json 4. test accuracy and mean learners per token at each budget (gate thresholds,
                         or target means turned into thresholds on training windows) beside the
                         VQ model without ACM
    out/acm.json      configuration, per-stage metrics and loss history

The starting VQ model (``start``) is the VQ recipe's ``out/model`` or any checkpoint,
e.g. the shipped default; its heads are kept (the end-to-end stage keeps what they read).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..model.acm import acm_modules, set_threshold
from ..model.checkpoint import (
    CheckpointError,
    load_base,
    load_checkpoint,
    read_config,
    save_checkpoint,
)
from ..model.config import ACMConfig, ModelConfig
from ..model.transformer import VQTransformer
from .acm import (
    AcmTrainConfig,
    Captured,
    calibrate_thresholds,
    capture,
    distil_learners,
    finetune_end_to_end,
    neuron_importance,
    prefix_errors,
    train_gates,
)
from .pipeline import training_windows
from .resumable import ResumableReport
from .supervision import LabelledText
from .tasks import TaskData, capped, extract, head_test_accuracy


class LearnerTally:
    """Counts learners run per row by every ACM MLP of a model while attached (forward hooks)."""

    def __init__(self, model: VQTransformer):
        self.learners = [0] * len(acm_modules(model))
        self.rows = [0] * len(self.learners)
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(acm_modules(model))]

    def _hook(self, i: int):
        def record(module, args, output):
            self.learners[i] += int(module.last_learners.sum())
            self.rows[i] += module.last_learners.numel()
        return record

    def close(self) -> None:
        for h in self.handles:
            h.remove()

    def per_layer(self) -> list[float]:
        return [round(k / max(1, r), 4) for k, r in zip(self.learners, self.rows)]

    def mean(self) -> float:
        return sum(self.learners) / max(1, sum(self.rows))


def test_subset(data: TaskData, cfg: AcmTrainConfig) -> TaskData:
    """``data`` with its test split cut to ``cfg.eval_docs`` articles of ``cfg.eval_doc_tokens`` tokens
    and ``cfg.eval_span_docs`` span documents (seeded), so the trade-off fits a CPU run."""
    docs = capped(list(range(len(data.doc_ids["test"]))), cfg.eval_docs, cfg.seed)
    spans = capped(data.span_docs["test"], cfg.eval_span_docs, cfg.seed)
    doc_ids = {**data.doc_ids, "test": [data.doc_ids["test"][i][: cfg.eval_doc_tokens] for i in docs]}
    targets = {**data.doc_targets, "test": data.doc_targets["test"][docs]}
    return replace(data, doc_ids=doc_ids, doc_targets=targets, span_docs={**data.span_docs, "test": spans})


def test_accuracy(model: VQTransformer, data: TaskData, progress: bool) -> dict:
    """The model's own heads on its VQ features, test split (and mean learners per token with ACM,
    over every row run: the right-padding of short texts in a batch counts too)."""
    tally = LearnerTally(model) if model.cfg.acm else None
    feats = extract(model, data, [model.cfg.depth], vq=True, splits=("test",), progress=progress)
    result = head_test_accuracy(model, feats, data, model.cfg.depth)
    if tally is not None:
        tally.close()
        result["mean_learners"] = round(tally.mean(), 4)
        result["mean_learners_per_layer"] = tally.per_layer()
    return result


@torch.no_grad()
def prefix_error_profile(model: VQTransformer, data: Captured) -> list[list[float]]:
    """Per layer, mean relative error of each prefix of learners on (the first 2048) captured rows."""
    device = model.device
    return [
        [round(float(e), 4) for e in prefix_errors(acm, x[:2048].to(device), y[:2048].to(device)).mean(0)]
        for acm, x, y in zip(acm_modules(model), data.inputs, data.outputs)
    ]


def check_start(start: Path, cfg: AcmTrainConfig) -> None:
    """Refuse, before any data is read, a start that is not a checkpoint or cannot take ``cfg``'s learners."""
    config = read_config(start)  # CheckpointError if it is not a checkpoint
    try:
        model = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{start}/config.json: bad model config: {exc}") from None
    if model.acm is not None:
        raise CheckpointError(f"{start} already has ACM MLPs; start from a VQ model without them")
    try:
        model.check_acm(ACMConfig(learners=cfg.learners))
    except ValueError as exc:
        raise CheckpointError(f"--acm-learners: {exc}") from None


def run_acm_pipeline(
    out: Path,
    start: Path,
    cfg: AcmTrainConfig,
    *,
    data: TaskData,
    text_ids: list[list[int]],
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) every ACM stage on the VQ checkpoint ``start``; returns out/acm.json's report."""
    out.mkdir(parents=True, exist_ok=True)
    report = ResumableReport(out / "acm.json")
    report["config"] = asdict(cfg)
    report["start"] = str(start)

    torch.manual_seed(cfg.seed)
    source = (read_config(start).get("base") or {}).get("source")
    base = load_base(source)
    teacher = load_checkpoint(start, device)
    depth = teacher.cfg.depth
    windows = training_windows(text_ids, cfg.window_tokens, None, cfg.seed)
    shuffled = windows[torch.randperm(len(windows), generator=torch.Generator().manual_seed(cfg.seed))]
    captured: list[Captured] = []

    def captured_rows() -> Captured:
        if not captured:
            started = time.time()
            captured.append(capture(teacher, shuffled[: cfg.capture_windows], depth))
            report["capture"] = {"rows_per_layer": len(captured[0].inputs[0]), "seconds": round(time.time() - started, 1)}
        return captured[0]

    def checkpoint(model: VQTransformer, directory: Path, info: dict) -> None:
        save_checkpoint(model.cpu(), directory, base_source=source, external_base=True, info=info, delta_rank=16,
                        base_model=base)
        model.to(device)

    # 1. learners cut from the MLPs (most important neurons first) and distilled from them
    distil_dir = out / "acm-distil"
    if not (distil_dir / "config.json").is_file():
        started = time.time()
        rows = captured_rows()
        model = load_checkpoint(start, device)
        importance = [neuron_importance(model.blocks[i].mlp, rows.inputs[i][:4096].to(device)) for i in range(depth)]
        model.set_acm(ACMConfig(learners=cfg.learners, layers=depth, gate_hidden=cfg.gate_hidden), importance)
        before = prefix_error_profile(model, rows)
        history = distil_learners(model, rows, cfg, progress)
        report["distil"] = {"prefix_errors_before": before, "prefix_errors_after": prefix_error_profile(model, rows),
                            "history": history, "seconds": round(time.time() - started, 1)}
        checkpoint(model, distil_dir, {"stage": "ACM 1: learners distilled", **report["distil"]})
        report.save()
        log(f"ACM distil: relative error by learners, layer 1: {report['distil']['prefix_errors_after'][0]}")

    # 2. gates on "fewest learners within tolerance" labels
    gates_dir = out / "acm-gates"
    if not (gates_dir / "config.json").is_file():
        started = time.time()
        model = load_checkpoint(distil_dir, device)
        report["gates"] = {**train_gates(model, captured_rows(), cfg, progress), "seconds": round(time.time() - started, 1)}
        checkpoint(model, gates_dir, {"stage": "ACM 2: gates", **report["gates"]})
        report.save()
        log(f"ACM gates: label mean learners per layer {report['gates']['label_mean_learners']}")

    # 3. end to end: distillation + task + budget + diversity
    model_dir = out / "acm-model"
    if not (model_dir / "config.json").is_file():
        started = time.time()
        model = load_checkpoint(gates_dir, device)
        history = finetune_end_to_end(model, teacher, shuffled, LabelledText.from_tasks(data), cfg, out / "acm-e2e",
                                      progress)
        report["end_to_end"] = {"history": history, "seconds": round(time.time() - started, 1)}
        checkpoint(model, model_dir, {"stage": "ACM 3: end to end", "last": history[-1] if history else None})
        report.save()

    # 4. the trade-off: test accuracy and learners per token at each budget, beside the plain VQ model
    if "eval" not in report:
        started = time.time()
        model = load_checkpoint(model_dir, device)
        test = test_subset(data, cfg)
        result = {"test_set": {"documents": len(test.doc_ids["test"]), "document_tokens": cfg.eval_doc_tokens,
                               "spans": sum(len(d.spans) for d in test.span_docs["test"])},
                  "plain": test_accuracy(teacher, test, progress), "budgets": []}
        log(f"plain VQ model: {result['plain']}")
        calibrated = calibrate_thresholds(model, shuffled[-cfg.capture_windows :], cfg.target_means)
        for threshold, target in [(t, None) for t in cfg.thresholds] + list(zip(calibrated, cfg.target_means)):
            set_threshold(model, threshold)
            budget = {"threshold": threshold, "target_mean": target}
            result["budgets"].append({**budget, **test_accuracy(model, test, progress)})
            log(f"ACM threshold {threshold}: {result['budgets'][-1]}")
        result["seconds"] = round(time.time() - started, 1)
        report["eval"] = result
        (out / "acm-eval.json").write_text(json.dumps(result, indent=1) + "\n")
        report.save()
    return report
