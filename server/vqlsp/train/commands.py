"""The ``vqlsp train`` and ``vqlsp eval`` commands (argument parsing and real data)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run directory (re-run the same command to resume)")
    p.add_argument("--scale", default="cpu", choices=("cpu", "gpu"),
                   help="cpu: capped training data, few steps; gpu: all data, full fine-tuning (default cpu)")
    p.add_argument("--k", type=int, help="codes per (layer, head) (default: the shipped recipe's, 32)")
    p.add_argument("--exit-layer", type=int, help="heads read after this many layers (default: the shipped recipe's, 12)")
    p.add_argument("--steps", type=int, help="fine-tuning steps")
    p.add_argument("--batch-size", type=int, help="fine-tuning batch (windows per step)")
    p.add_argument("--lr", type=float, help="fine-tuning learning rate")
    p.add_argument("--lora-rank", type=int, help="rank of the adapters")
    p.add_argument("--lora-mlp", action="store_true", default=None,
                   help="adapters on the MLP projections too (default: attention only)")
    for name, text in (("w-vq", "codebook + commitment"), ("w-margin", "margin widening"),
                       ("w-flip", "flip-aware (edited copy)"), ("w-hidden", "state distillation"),
                       ("w-logits", "logit distillation"), ("w-task", "heads' cross-entropy on labelled text")):
        p.add_argument(f"--{name}", type=float, help=f"weight of the {text} loss")
    p.add_argument("--task-heads", choices=("fitted", "zero"),
                   help="task term: start from the fitted heads (default) or from zero")
    p.add_argument("--jitter", type=float, help="fraction of steps with jittered position ids")
    p.add_argument("--window-tokens", type=int, help="length of the training text windows")
    p.add_argument("--time-limit", type=float, help="stop fine-tuning after this many seconds (schedule follows time)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    acm = p.add_argument_group("adaptive computation modules (train/acm_pipeline.py)")
    acm.add_argument("--acm", action="store_true",
                     help="then run the ACM stages on the VQ model (out/model, or --acm-from)")
    acm.add_argument("--acm-from", help="VQ checkpoint to start the ACM stages from, skipping the VQ recipe "
                     "('default': the shipped model)")
    for name, kind, text in (("learners", int, "learners per MLP"), ("target", float, "stage 3 mean learners per token"),
                             ("tolerance", float, "stage 2 label tolerance (relative error)"),
                             ("capture-windows", int, "windows captured for stages 1-2"),
                             ("distil-steps", int, "stage 1 steps"), ("gate-steps", int, "stage 2 steps per gate"),
                             ("e2e-steps", int, "stage 3 steps")):
        acm.add_argument(f"--acm-{name}", type=kind, help=text)
    acm.add_argument("--acm-thresholds", type=float, nargs="+", help="budgets evaluated: gate thresholds")
    acm.add_argument("--acm-target-means", type=float, nargs="+",
                     help="budgets evaluated: mean learners per token (default 1.5 2.5 3.5)")


ACM_OPTIONS = {"acm_learners": "learners", "acm_target": "target_learners", "acm_tolerance": "tolerance",
               "acm_capture_windows": "capture_windows", "acm_distil_steps": "distil_steps",
               "acm_gate_steps": "gate_steps", "acm_e2e_steps": "e2e_steps", "acm_thresholds": "thresholds",
               "acm_target_means": "target_means"}


def acm_config(args: argparse.Namespace):
    """The ACM stages' settings at ``args.scale`` with the command line's overrides."""
    from .acm import AcmTrainConfig

    cfg = AcmTrainConfig()
    if args.scale == "gpu":
        cfg = AcmTrainConfig(capture_windows=256, window_tokens=256, distil_steps=600, distil_rows=4096,
                             distil_lr=1e-4, gate_steps=1000, e2e_steps=600, e2e_windows=8, e2e_task_docs=8,
                             checkpoint_every=100, target_means=(1.25, 1.75, 2.25, 2.75, 3.25), eval_docs=None,
                             eval_span_docs=None, eval_doc_tokens=256)
    for arg, name in ACM_OPTIONS.items():
        value = getattr(args, arg, None)
        if value is not None:
            setattr(cfg, name, tuple(value) if isinstance(value, list) else value)
    cfg.seed = args.seed
    return cfg


def _overrides(args: argparse.Namespace) -> dict:
    names = {"k": "k", "exit_layer": "exit_layer", "steps": "steps", "batch_size": "batch_size", "lr": "lr",
             "lora_rank": "lora_rank", "lora_mlp": "lora_mlp", "w_vq": "w_vq", "w_margin": "w_margin",
             "w_flip": "w_flip", "w_hidden": "w_hidden", "w_logits": "w_logits", "w_task": "w_task", "task_heads": "task_heads",
             "jitter": "jitter", "window_tokens": "window_tokens", "time_limit": "time_limit_s"}
    out = {field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg) is not None}
    out["seed"] = args.seed
    return out


def real_data(tokenizer, scale):
    """The BBC News + sentiment tasks and the training text (full BBC training articles, snippet runs)."""
    from .data import bbc_news
    from .tasks import capped, load_tasks

    data = load_tasks(tokenizer, scale)
    articles = capped(bbc_news("train"), scale.doc_train, scale.seed)
    text_ids = [tokenizer.encode(e.text).ids for e in articles] + [d.ids for d in data.span_docs["train"]]
    return data, text_ids


def run_train(args: argparse.Namespace) -> int:
    from tokenizers import Tokenizer

    from ..model.base_weights import default_tokenizer_path, load_default_base
    from ..model.checkpoint import DEFAULT_BASE
    from ..model.device import resolve_device
    from .pipeline import TrainConfig, run_pipeline

    cfg = TrainConfig.named(args.scale, **_overrides(args))
    device = str(resolve_device(args.device))
    out = Path(args.out)
    if args.acm_from:  # a bad start checkpoint fails now, not after the data is read
        from ..model.registry import model_dir
        from .acm_pipeline import check_start

        check_start(model_dir(None if args.acm_from == "default" else args.acm_from), acm_config(args))
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    data, text_ids = real_data(tokenizer, cfg.scale)
    if not args.acm_from:
        report = run_pipeline(
            out, cfg, load_base=load_default_base, base_source=DEFAULT_BASE, data=data,
            text_ids=text_ids, device=device, progress=not args.quiet,
        )
        print(json.dumps(report["eval"], indent=1))
        print(f"model: {out / 'model'}")
    if args.acm or args.acm_from:
        from ..model.registry import model_dir
        from .acm_pipeline import run_acm_pipeline

        start = out / "model" if not args.acm_from else model_dir(None if args.acm_from == "default" else args.acm_from)
        report = run_acm_pipeline(out, start, acm_config(args), data=data, text_ids=text_ids, device=device,
                                  progress=not args.quiet)
        print(json.dumps(report["eval"], indent=1))
        print(f"ACM model: {out / 'acm-model'}")
    return 0


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    p.add_argument("--json", help="write the metrics here")
    p.add_argument("--scale", default="cpu", choices=("cpu", "gpu"),
                   help="training data for the dense reference heads: cpu = capped, gpu = all (default cpu)")
    p.add_argument("--agreement-docs", type=int, default=16, help="edit traces for stable-vs-exact agreement")
    p.add_argument("--agreement-edits", type=int, default=16, help="edits per trace")
    p.add_argument("--reuse-tokens", type=int, default=1024, help="document length of the reuse measurement")
    p.add_argument("--reuse-edits", type=int, default=0, help="atomic edits measured for reuse (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--weights", default="auto", choices=("auto", "fp32", "q4"),
                   help="how the blocks' weights are held (model/q4.py; auto: q4 on the default base on a CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--onnx", metavar="DIR",
                   help="instead: test accuracy of the exported graphs DIR/model.onnx and DIR/model.int8.onnx "
                        "(quantized there if missing) beside the torch model, on the CPU")
    p.add_argument("--threads", type=int, default=0, help="--onnx: torch and ONNX Runtime threads (default: torch's)")


def run_onnx_eval(args: argparse.Namespace) -> int:
    """``vqlsp eval --onnx DIR``: see ``onnx_accuracy.py``."""
    import torch

    from ..model.onnx_export import graph_files
    from ..model.registry import load_model, load_tokenizer
    from .onnx_accuracy import onnx_accuracy
    from .tasks import DataScale, load_tasks

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, "cpu", weights="fp32")  # what the graphs hold (a traced 4-bit kernel cannot be)
    graphs = graph_files(args.onnx, model)
    data = load_tasks(load_tokenizer(args.model), DataScale.named(args.scale), splits=("test",))
    result = onnx_accuracy(model, data, graphs, threads=torch.get_num_threads(), progress=not args.quiet)
    result.update(model=args.model or "default", graphs={k: str(v) for k, v in graphs.items()},
                  threads=torch.get_num_threads())
    print(json.dumps({k: result[k] for k in ("torch", "fp32", "int8", "test_examples")}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    if args.onnx:
        return run_onnx_eval(args)
    from ..model.checkpoint import load_base, read_config
    from ..model.device import resolve_device
    from ..model.registry import load_model, load_tokenizer, model_dir
    from .evaluate import evaluate_model, long_documents
    from .tasks import DataScale, load_tasks

    device = str(resolve_device(args.device))
    model = load_model(args.model, device, weights=args.weights)
    base = read_config(model_dir(args.model)).get("base") or {}
    dense = load_base(base.get("source")).to(device) if base.get("weights") == "external" else model
    tokenizer = load_tokenizer(args.model)
    data = load_tasks(tokenizer, DataScale.named(args.scale))
    reuse_docs = long_documents(data.doc_ids["test"], args.reuse_tokens, 4) if args.reuse_edits else []
    result = evaluate_model(
        model, dense, data, agreement_docs=args.agreement_docs, agreement_edits=args.agreement_edits,
        reuse_docs=reuse_docs, reuse_edits=args.reuse_edits, seed=args.seed, progress=not args.quiet,
    )
    result["model"] = args.model or "default"
    result["data"] = data.describe()
    print(json.dumps({k: result[k] for k in ("document", "span", "stable_vs_exact_agreement")}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
