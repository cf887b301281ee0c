"""The ``vqlsp`` command line: ``serve | demo | classify | info | bench | train | train-head | eval | export | analyze``.

Errors a user can cause (a missing model, a bad checkpoint, a file that is not
text, a missing package) end in one line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__

EXIT_USAGE = 2


class NotText(ValueError):
    """An input file is not UTF-8 text."""


def read_text_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotText(f"cannot read {path}: {exc.strerror}") from None
    if b"\x00" in data:
        raise NotText(f"{path} is not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotText(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None


def cmd_classify(args: argparse.Namespace) -> int:
    from .model.predict import classify_ids
    from .model.registry import load_model, load_tokenizer

    text = read_text_file(Path(args.file))
    model = load_model(args.model, args.device)
    ids = load_tokenizer(args.model).encode(text).ids
    limit = args.max_tokens
    truncated = len(ids) > limit
    prediction = classify_ids(model, ids[:limit])
    if args.json:
        print(json.dumps({
            "file": args.file, "label": prediction.label, "probabilities": prediction.probabilities,
            "tokens": len(ids), "truncated_to": limit if truncated else None,
        }, indent=2))
        return 0
    print(f"{args.file}: {prediction.label}  ({len(ids)} tokens{f', first {limit} read' if truncated else ''})")
    for label, p in sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<16} {p:6.1%}  {'#' * round(p * 40)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .model.base_weights import cache_dir
    from .model.checkpoint import read_config
    from .model.device import resolve_device
    from .model.registry import load_model, model_dir

    directory = model_dir(args.model)
    config = read_config(directory)
    model = load_model(args.model, args.device)
    cfg = model.cfg
    params = sum(p.numel() for p in model.parameters())
    codebook = sum(b.vq.codebook.numel() for b in model.blocks)
    rows = {
        "version": __version__,
        "model": str(directory),
        "base weights": (config.get("base") or {}).get("source") or "included",
        "architecture": f"{cfg.arch}: {cfg.n_layers} layers, d_model {cfg.d_model}, "
        f"{cfg.n_heads} heads x {cfg.d_head} ({cfg.n_kv_heads} kv), {cfg.positions} positions"
        + (f"; heads read layer {cfg.depth} (early exit)" if cfg.exit_layer else ""),
        "vq": f"K={cfg.vq.codebook_size} codes per (layer, head), {'on' if cfg.vq.enabled else 'off'}",
        "parameters": f"{params / 1e6:.1f}M ({codebook / 1e6:.2f}M in codebooks)",
        "document head": _head_line(model.document_head),
        "span head": _head_line(model.span_head),
        "device": str(resolve_device(args.device)),
        "cache": str(cache_dir()),
    }
    accuracy = (config.get("info") or {}).get("test_accuracy") or {}
    for task, value in accuracy.items():
        rows[f"{task} head test accuracy"] = f"{value:.1%}"
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(map(len, rows))
        for key, value in rows.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _head_line(head) -> str:
    if head is None:
        return "none"
    return f"{len(head.labels)} labels ({', '.join(head.labels)})"


def cmd_export(args: argparse.Namespace) -> int:
    from .model.onnx_export import export_onnx, parity, quantize_int8
    from .model.registry import load_model

    model = load_model(args.model, "cpu", weights="fp32")  # the 4-bit kernel is native code, not traceable
    path = export_onnx(model, args.onnx)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    graphs = [("fp32", path)]
    if args.int8:
        graphs.append(("int8", quantize_int8(path)))
        print(f"wrote {graphs[-1][1]} ({graphs[-1][1].stat().st_size / 1e6:.1f} MB)")
    for name, graph in graphs:
        check = parity(model, graph)
        print(f"{name} vs torch on {check.pop('tokens')} random tokens: "
              + ", ".join(f"{k} {v:.2e}" for k, v in check.items()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from .lsp.server import serve

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()), filename=args.log_file,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    serve(args.tcp, dense=args.dense, threads=args.threads, loop_lag=args.loop_lag)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .lsp.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqlsp", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"vqlsp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")

    p = sub.add_parser("classify", help="classify a text file with a dense forward")
    p.add_argument("file")
    model_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--max-tokens", type=int, default=2048, help="read at most this many tokens (default 2048)")
    p.set_defaults(run=cmd_classify)

    p = sub.add_parser("info", help="describe the model, its heads and the device")
    model_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("export", help="export the model's dense forward to ONNX (inputs, outputs: model/onnx_export.py)")
    p.add_argument("--onnx", required=True, metavar="DIR", help="write model.onnx here")
    p.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx (int8 dynamic quantization)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("serve", help="run the language server (stdio, or --tcp HOST:PORT)")
    p.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-file", help="log here instead of stderr")
    p.add_argument("--threads", type=int, help="torch threads for inference (default: $VQLSP_THREADS, else 1)")
    p.add_argument("--loop-lag", action="store_true",
                   help="measure how late the event loop wakes up (vqlsp.documentStats: loopLag); for benchmarks")
    p.add_argument("--dense", action="store_true", help=argparse.SUPPRESS)  # benchmark baseline
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("demo", help="replay a scripted editing session against the real server")
    model_options(p)
    p.add_argument("--file", help="document to open (default: the bundled sample)")
    p.add_argument("--script", help="JSON edit script (default: the bundled one)")
    p.add_argument("--debounce-ms", type=float, default=30.0, help="server debounce (default 30)")
    p.add_argument("--typing-ms", type=float, default=80.0, help="pause between typed keystrokes (default 80)")
    p.add_argument("--json", action="store_true", help="print one JSON object per edit")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("train", help="train the default model: codebooks, VQ-aware fine-tuning, heads (resumable)")
    train_commands().add_train_arguments(p)
    p.set_defaults(run=lambda a: train_commands().run_train(a))

    p = sub.add_parser(
        "train-head", help="fit a head for your own labels (CSV/TSV/JSONL) on a model's frozen features",
        description="Fit a document or span head for your own labels on a model's frozen VQ features; print a "
        "validation report; write the head (serve it with the `heads` option), a checkpoint (the `model` "
        "option) and the report into --out.",
    )
    train_head().add_arguments(p)
    p.set_defaults(run=lambda a: train_head().run(a))

    p = sub.add_parser("eval", help="test-set accuracy, dense vs VQ, stable-vs-exact agreement (JSON)")
    train_commands().add_eval_arguments(p)
    p.set_defaults(run=lambda a: train_commands().run_eval(a))

    p = sub.add_parser(
        "analyze", help="compute analyses: one file's per-token compute heat map, or the test sets (--test-sets)")
    analyze_commands().add_arguments(p)
    p.set_defaults(run=lambda a: analyze_commands().run(a))

    p = sub.add_parser(
        "bench", help="benchmarks (print a table, write JSON)",
        description="benchmarks: " + "; ".join(f"{name}: {text}" for name, _, text in BENCHES),
    )
    p.add_argument("bench", choices=[name for name, _, _ in BENCHES], help="which benchmark")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="its options (vqlsp bench NAME --help)")
    p.set_defaults(run=cmd_bench)
    return parser


BENCHES = [
    ("text", "text_bench", "per-keystroke cost of text -> token edits"),
    ("lsp", "lsp_bench", "keystroke-to-publish latency at a client over real stdio"),
    ("engine", "engine_bench", "incremental engine vs dense and prefix-cache re-runs (ops, ms)"),
    ("acm", "acm_bench", "ACM trade-off: accuracy vs learners per token and ms per edit (table, PNG)"),
    ("typing", "typing_bench", "keystroke -> covering result with edits sent on a clock, over real stdio"),
    ("soak", "soak_bench", "the server's RSS over many edits, opens and closes, over real stdio"),
    ("memory", "memory_bench", "what a long document's text structures hold beside the state budget (in-process)"),
]


def train_commands():
    import importlib

    return importlib.import_module("vqlsp.train.commands")


def train_head():
    import importlib

    return importlib.import_module("vqlsp.train.train_head")


def analyze_commands():
    import importlib

    return importlib.import_module("vqlsp.analyze.commands")


def cmd_bench(args: argparse.Namespace) -> int:
    """Import only the benchmark that runs (each may need its own heavy modules)."""
    import importlib

    module_name = next(module for name, module, _ in BENCHES if name == args.bench)
    module = importlib.import_module(f"vqlsp.bench.{module_name}")
    parser = argparse.ArgumentParser(prog=f"vqlsp bench {args.bench}")
    module.add_arguments(parser)
    return module.run(parser.parse_args(args.bench_args))


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or set-up, not a bug: one line, exit 2."""
    from .analyze.commands import AnalyzeError
    from .model.base_weights import BaseModelMissing
    from .model.checkpoint import CheckpointError
    from .model.convert import UnsupportedArchitecture
    from .model.device import DeviceUnavailable
    from .model.head_files import HeadFileError
    from .model.onnx_export import GraphError
    from .model.predict import NoDocumentHead
    from .train.data import DatasetMissing
    from .train.head_data import DataError
    from .train.train_head import MissingExtra

    return (NotText, BaseModelMissing, CheckpointError, UnsupportedArchitecture, DeviceUnavailable,
            NoDocumentHead, DatasetMissing, GraphError, FileNotFoundError, DataError, HeadFileError, MissingExtra,
            AnalyzeError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except user_errors() as exc:
        print(f"vqlsp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
