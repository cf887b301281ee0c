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
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    data, text_ids = real_data(tokenizer, cfg.scale)
    report = run_pipeline(
        Path(args.out), cfg, load_base=load_default_base, base_source=DEFAULT_BASE, data=data,
        text_ids=text_ids, device=device, progress=not args.quiet,
    )
    print(json.dumps(report["eval"], indent=1))
    print(f"model: {Path(args.out) / 'model'}")
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


def run_eval(args: argparse.Namespace) -> int:
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
