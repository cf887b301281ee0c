"""``vqlsp train-head``: a head for the user's own labels, on a model's frozen VQ features.

    vqlsp train-head DATA --kind document|span --out DIR [--base DIR]

Reads and checks the labelled file (``head_data``: any problem is one line that
names the row, and nothing is written), computes the model's features of every
text (``head_features``: cached, so a second run takes seconds), holds out a
stratified validation split, fits a logistic-regression head (``heads.fit_logistic``:
L2 strength, and for a document head the pooling, chosen by validation accuracy),
prints the validation report and writes, into DIR:

* ``head.safetensors``: the head alone, to serve beside the model's own heads
  (the server's ``heads`` option; ``model/head_files.py``);
* ``config.json`` + ``model.safetensors``: a checkpoint, the base model with this
  head in place of its own head of that kind (the server's ``model`` option; it
  stores only the heads and names its base);
* ``report.json`` and ``confusion.png``: the validation report.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections import Counter
from pathlib import Path

import torch

from ..model.checkpoint import checkpoint_source, save_checkpoint
from ..model.head_files import HEAD_FILE, model_probe, save_head
from ..model.heads import KINDS, POOLINGS, DocumentHead, SpanHead
from .head_data import FORMATS, MAX_ROWS, DataError, LabelledData, read_labelled
from .head_features import example_features
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
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..model.registry import load_model, load_tokenizer

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

    model = load_model(args.base, args.device)
    own = {h.name for h in (model.document_head, model.span_head) if h is not None}
    if name in own:
        raise DataError(f"the name {name!r} is taken by one of the model's own heads; pass --name")
    tokenizer = load_tokenizer(args.base)
    t0 = time.perf_counter()
    features, cached = example_features(
        model, tokenizer, args.kind, data.texts, max_tokens=args.max_tokens, progress=not args.quiet,
        use_cache=not args.no_cache,
    )
    feature_s = time.perf_counter() - t0
    print(f"features: {len(data.rows)} texts, layer {model.cfg.depth}, "
          f"{'from the cache' if cached else 'computed'} in {feature_s:.1f} s")

    train, val = _split(data, args.val_fraction, args.seed)
    head, fit = _fit(args.kind, name, args.unit, data, features, train, val, model.hidden_dim)
    x_val = features[getattr(head, "pooling", "mean")][val]
    with torch.no_grad():
        predicted = head.linear(x_val).argmax(1).tolist()
    targets = torch.tensor(data.targets)
    metrics = head_metrics(data.labels, targets[val].tolist(), predicted)
    print(format_report(metrics))

    info = {
        "trained_by": "vqlsp train-head", "data": str(args.data), "kind": args.kind, "name": name,
        "examples": len(data.rows), "train": len(train), "validation": len(val), "seed": args.seed,
        "max_tokens": args.max_tokens, "base": args.base or "default", "notes": data.notes,
        "fit": fit, "validation_accuracy": metrics["accuracy"],
    }
    _write(out, model, head, args.base, info, metrics, name)
    total = time.perf_counter() - started
    info["seconds"] = {"features": round(feature_s, 1), "features_cached": cached, "total": round(total, 1)}
    (out / "report.json").write_text(json.dumps({**info, "metrics": metrics}, indent=1) + "\n")
    print(f"wrote {out}: {HEAD_FILE} (serve beside the model's heads: \"heads\": [\"{out}\"]), a checkpoint "
          f"(\"model\": \"{out}\"), report.json, confusion.png ({total:.1f} s in all)")
    return 0


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


def _fit(kind: str, name: str, unit: str, data: LabelledData, features: dict[str, torch.Tensor],
         train: torch.Tensor, val: torch.Tensor, dim: int) -> tuple[DocumentHead | SpanHead, dict]:
    y = torch.tensor(data.targets)
    poolings = POOLINGS if kind == "document" else ("mean",)
    best = None
    for pooling in poolings:
        x = features[pooling]
        fit = fit_logistic(x[train], y[train], x[val], y[val], len(data.labels))
        if best is None or fit.val_acc > best[1].val_acc:
            best = (pooling, fit)
    assert best is not None
    pooling, fit = best
    head = DocumentHead(dim, data.labels, pooling, name) if kind == "document" else SpanHead(dim, data.labels, unit, name)
    with torch.no_grad():
        head.linear.weight.copy_(fit.weight)
        head.linear.bias.copy_(fit.bias)
    summary = {"l2": fit.l2}
    if kind == "document":
        summary["pooling"] = pooling
    return head.eval(), summary


def _write(out: Path, model, head: DocumentHead | SpanHead, base: str | None, info: dict, metrics: dict,
           name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    head = head.to(device=model.device)
    save_head(out / HEAD_FILE, head, model_probe(model), info)
    if head.kind == "document":
        model.set_heads(head, model.span_head)
    else:
        model.set_heads(model.document_head, head)
    save_checkpoint(model, out, base_source=checkpoint_source(base), external_base=True, base_model=model, info=info)
    confusion_png(metrics, out / "confusion.png", f"{name} ({head.kind} head)")
