"""``vqlsp train-head``: a head for the user's own labels, on a model's frozen VQ features.

    vqlsp train-head DATA --kind document|span --out DIR [--base DIR]

Reads and checks the labelled file (``head_data``: any problem is one line that
names the row, and nothing is written), computes the model's features of every
text (``head_features``: cached, so a second run takes seconds and, when every
feature is cached, never loads the model; the training rows in bfloat16 where the
hardware runs it natively, the validation rows always in float32, as the server
computes them, so the report is the server's accuracy), holds out a
stratified validation split, fits a logistic-regression head (``heads.fit_logistic``:
L2 strength, and for a document head the pooling, chosen by validation accuracy),
prints the validation report and writes, into DIR:

* ``head.safetensors``: the head alone, to serve beside the model's own heads
  (the server's ``heads`` option; ``model/head_files.py``);
* ``config.json`` + ``model.safetensors``: a checkpoint, the base model with this
  head in place of its own head of that kind (the server's ``model`` option; it
  stores only the heads and names its base: ``head_files.save_head_checkpoint``);
* ``report.json`` and ``confusion.png``: the validation report.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from ..model.checkpoint import read_config
from ..model.config import ModelConfig
from ..model.device import resolve_device
from ..model.head_files import HEAD_FILE, save_head, save_head_checkpoint
from ..model.heads import KINDS, POOLINGS, DocumentHead, SpanHead
from ..model.registry import model_dir
from .head_data import FORMATS, MAX_ROWS, DataError, LabelledData, read_labelled
from .head_features import PRECISIONS, checkpoint_fingerprint, example_features
from .head_report import confusion_png, format_report, head_metrics
from .heads import fit_logistic


class MissingExtra(RuntimeError):
    """A package of the ``train`` extra is not installed."""


OUTPUTS = ("head.safetensors", "config.json", "model.safetensors", "report.json", "confusion.png")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="labelled examples: a .csv, .tsv or .jsonl file with a text and a label column")
    p.add_argument("--kind", required=True, choices=KINDS,
                   help="document: one label per document (each row a document); span: one label per "
                        "sentence or paragraph (each row a sentence or paragraph)")
    p.add_argument("--out", required=True, help="directory to write the head, a checkpoint and the report into")
    p.add_argument("--base", help="checkpoint whose features the head reads (default: the embedded default model)")
    p.add_argument("--name", help="the head's name, as clients show it (default: the --out directory's name)")
    p.add_argument("--text-column", help="column (or JSON key) of the text (default: the first of text, sentence, "
                                         "message, content, body)")
    p.add_argument("--label-column", help="column (or JSON key) of the label (default: the first of label, class, "
                                          "category, target, tag)")
    p.add_argument("--format", choices=FORMATS, help="file format (default: from the file name)")
    p.add_argument("--unit", choices=("sentence", "paragraph"), default="sentence",
                   help="span heads: what a row is (default sentence)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out share for validation (default 0.2)")
    p.add_argument("--max-tokens", type=int, default=256,
                   help="tokens read per document, or per run of sentences (default 256: the server's section)")
    p.add_argument("--max-rows", type=int, default=MAX_ROWS, help=f"refuse larger files (default {MAX_ROWS:,})")
    p.add_argument("--drop-conflicts", action="store_true",
                   help="leave out texts that appear under two labels (default: refuse the file)")
    p.add_argument("--seed", type=int, default=0, help="validation split seed")
    p.add_argument("--no-cache", action="store_true", help="compute features again (and do not cache them)")
    p.add_argument("--train-precision", choices=("auto", *PRECISIONS), default="auto",
                   help="precision of the training rows' features; validation rows are always float32, as the "
                        "server computes them (default auto: bf16 where the CPU or GPU runs it natively, about "
                        "1.5x faster; fp32 caches every row at the server's precision, so another --seed or "
                        "--val-fraction reuses them)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..model.registry import load_tokenizer

    started = time.perf_counter()
    if importlib.util.find_spec("sklearn") is None:  # the split and the report's metrics
        raise MissingExtra("vqlsp train-head needs scikit-learn: pip install 'vqlsp[train]'")
    if not 0 < args.val_fraction < 1:
        raise DataError(f"--val-fraction {args.val_fraction} is not between 0 and 1")
    data = read_labelled(
        args.data, fmt=args.format, text_column=args.text_column, label_column=args.label_column,
        max_rows=args.max_rows, drop_conflicts=args.drop_conflicts,
    )
    out = _output_dir(Path(args.out))
    name = args.name or out.resolve().name
    counts = Counter(r.label for r in data.rows)
    print(f"{args.data}: {len(data.rows)} examples, {len(data.labels)} labels "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); text column {data.text_column!r}, "
          f"label column {data.label_column!r}")
    for note in data.notes:
        print(f"  note: {note}")

    config = read_config(model_dir(args.base))  # the base's description: its weights load only if needed
    cfg = ModelConfig.from_dict(config["model"])
    own = {head.get("name", kind) for kind, head in (config.get("heads") or {}).items()}
    if name in own:
        raise DataError(f"the name {name!r} is taken by one of the model's own heads; pass --name")
    tokenizer = load_tokenizer(args.base)
    train, val = _split(data, args.val_fraction, args.seed)
    t0 = time.perf_counter()
    x_train, x_val, probe, how = _features(args, data, tokenizer, train, val)
    feature_s = time.perf_counter() - t0
    print(f"features: {len(data.rows)} texts, layer {cfg.depth}, {how} in {feature_s:.1f} s")

    targets = torch.tensor(data.targets)
    hidden_dim = cfg.embed_proj_dim or cfg.d_model
    head, fit = _fit(args.kind, name, args.unit, data.labels, x_train, targets[train], x_val, targets[val],
                     hidden_dim)
    with torch.no_grad():
        predicted = head.linear(x_val[getattr(head, "pooling", "mean")]).argmax(1).tolist()
    metrics = head_metrics(data.labels, targets[val].tolist(), predicted)
    print(format_report(metrics))

    info = {
        "trained_by": "vqlsp train-head", "data": str(args.data), "kind": args.kind, "name": name,
        "examples": len(data.rows), "train": len(train), "validation": len(val), "seed": args.seed,
        "max_tokens": args.max_tokens, "base": args.base or "default", "notes": data.notes,
        "features": {"train": args.train_precision, "validation": "fp32"},
        "fit": fit, "validation_accuracy": metrics["accuracy"],
    }
    _write(out, head, probe, args.base, info, metrics, name)
    total = time.perf_counter() - started
    info["seconds"] = {"features": round(feature_s, 1), "features_cached": how == "from the cache",
                       "total": round(total, 1)}
    (out / "report.json").write_text(json.dumps({**info, "metrics": metrics}, indent=1) + "\n")
    print(f"wrote {out}: {HEAD_FILE} (serve beside the model's heads: \"heads\": [\"{out}\"]), a checkpoint "
          f"(\"model\": \"{out}\"), report.json, confusion.png ({total:.1f} s in all)")
    return 0


def _features(args: argparse.Namespace, data: LabelledData, tokenizer, train: torch.Tensor, val: torch.Tensor):
    """Training and validation features (dicts by pooling), the model's probe, and how they were got.

    Validation rows are always float32, as the server computes them, so the report is the
    server's accuracy; training rows are ``args.train_precision`` (resolved from ``auto``).
    The model is loaded only if some feature is not cached."""
    from ..model.registry import load_model

    loaded: list = []

    def load():
        if not loaded:
            t0 = time.perf_counter()
            loaded.append(load_model(args.base, args.device, weights="fp32"))  # full batches: BLAS, not 4-bit
            print(f"model loaded in {time.perf_counter() - t0:.1f} s")
        return loaded[0]

    args.train_precision = resolve_precision(args.train_precision, args.device)
    keep_freed_memory()
    fingerprint = checkpoint_fingerprint(args.base)
    texts = data.texts
    common = dict(max_tokens=args.max_tokens, progress=not args.quiet, use_cache=not args.no_cache)
    if args.train_precision == "fp32":  # one entry for every text: any split reuses it
        features, probe, cached = example_features(load, fingerprint, tokenizer, args.kind, texts, **common)
        how = "from the cache" if cached else "computed (float32)"
        return ({k: v[train] for k, v in features.items()}, {k: v[val] for k, v in features.items()}, probe, how)
    x_train, _, cached_train = example_features(
        load, fingerprint, tokenizer, args.kind, [texts[i] for i in train], precision=args.train_precision,
        desc=f"features (train, {args.train_precision})", **common)
    x_val, probe, cached_val = example_features(
        load, fingerprint, tokenizer, args.kind, [texts[i] for i in val], desc="features (validation, fp32)",
        **common)
    if cached_train and cached_val:
        how = "from the cache"
    else:
        how = (f"computed ({len(train)} training texts in {args.train_precision}"
               f"{' (cached)' if cached_train else ''}, {len(val)} validation texts in float32"
               f"{' (cached)' if cached_val else ''})")
    return x_train, x_val, probe, how


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next batch instead of handing it back to the system.

    A forward batch allocates tensors of megabytes that glibc maps fresh and unmaps on
    every use; the page faults cost ~10% more CPU time in bf16 (measured: 1,185 vs 1,314
    tokens per CPU-second; 0.9 s of 6.8 CPU-seconds in the kernel). This is a one-shot
    command, so the process may hold on to what it freed. A no-op off glibc."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 256 << 20)
    mallopt(m_trim_threshold, 1 << 30)


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bfloat16 where matmuls run it natively (a CUDA device, a CPU with AVX512-BF16 or AMX),
    else float32."""
    if precision != "auto":
        return precision
    if resolve_device(device).type == "cuda":
        return "bf16"
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return "bf16" if supported is not None and supported() else "fp32"


def _output_dir(out: Path) -> Path:
    """``out`` may be new, empty, or an earlier train-head output (replaced); nothing else."""
    if out.exists() and (not out.is_dir() or any(p.name not in OUTPUTS for p in out.iterdir())):
        raise DataError(f"{out} exists and is not an earlier train-head output; choose another --out")
    return out


def _split(data: LabelledData, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified train / validation row indices (every label in both, as far as counts allow)."""
    from sklearn.model_selection import train_test_split

    n, k = len(data.rows), len(data.labels)
    size = min(max(round(fraction * n), k), n - k)
    train, val = train_test_split(list(range(n)), test_size=size, stratify=data.targets, random_state=seed)
    return torch.tensor(sorted(train)), torch.tensor(sorted(val))


def _fit(kind: str, name: str, unit: str, labels: list[str], x_train: dict[str, torch.Tensor], y_train: torch.Tensor,
         x_val: dict[str, torch.Tensor], y_val: torch.Tensor, dim: int) -> tuple[DocumentHead | SpanHead, dict]:
    poolings = POOLINGS if kind == "document" else ("mean",)
    best = None
    for pooling in poolings:
        fit = fit_logistic(x_train[pooling], y_train, x_val[pooling], y_val, len(labels))
        if best is None or fit.val_acc > best[1].val_acc:
            best = (pooling, fit)
    assert best is not None
    pooling, fit = best
    head = DocumentHead(dim, labels, pooling, name) if kind == "document" else SpanHead(dim, labels, unit, name)
    with torch.no_grad():
        head.linear.weight.copy_(fit.weight)
        head.linear.bias.copy_(fit.bias)
    summary = {"l2": fit.l2}
    if kind == "document":
        summary["pooling"] = pooling
    return head.eval(), summary


def _write(out: Path, head: DocumentHead | SpanHead, probe: torch.Tensor, base: str | None, info: dict,
           metrics: dict, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_head(out / HEAD_FILE, head, probe, info)
    save_head_checkpoint(out, base, head, info)
    confusion_png(metrics, out / "confusion.png", f"{name} ({head.kind} head)")
