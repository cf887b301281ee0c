"""``vqlsp bench engine``: the incremental engine against dense and prefix-cache re-runs.

All three strategies replay the same edit trace (``traces.py``) on the same model,
in the same process, one edit at a time, each measured with its own operation
count (``vqlsp.engine.ops``) and wall time. Ratios are taken per edit (dense /
incremental on the same edit), then summarised by their median. After every
edit the incremental outputs are compared with the dense ones
(``max_abs_prob_diff``).

Beside them run the dense re-runs a user would pick instead on ONNX Runtime, fp32 and
int8 (``ort_rows.py``; ``--no-ort`` skips them), with the engine's ratio to the fastest
dense re-run.

``work_efficiency`` isolates the engine from how well the codebooks are trained:
per edit, (dense ms x fraction of (row, layer) pairs that really changed) /
incremental ms; 1.0 means the engine costs exactly its share of a dense pass.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from . import ort_rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    p.add_argument("--tokens", type=int, nargs="+", default=[1024], help="document length(s) in tokens")
    p.add_argument("--edits", type=int, default=30, help="measured edits per length (default 30)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured edits first (default 2)")
    p.add_argument("--trace", default="atomic", choices=("atomic", "typing", "revision"))
    p.add_argument("--policy", default="stable", choices=("stable", "exact"))
    p.add_argument("--max-drift", type=int, default=128, help="stable policy: re-index past this drift")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--weights", default="auto", choices=("auto", "fp32", "q4"),
                   help="how the blocks' weights are held, for every strategy "
                   "(model/q4.py; auto: q4 on the default base on a CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true",
                   help="time the incremental session's stages and layers (synchronizes; slower)")
    p.add_argument("--static", default="auto", choices=("auto", "on", "off"),
                   help="the incremental session's layer loop without host syncs, on fixed-size row sets "
                   "(engine/static_loop.py; auto: on for CUDA)")
    p.add_argument("--no-dense-check", action="store_true", help="skip the dense baseline (no ratios)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--plot", help="write a PNG plot here (speedup vs length, rows changed per layer)")
    p.add_argument("--acm-model", help="also an ACM checkpoint (vqlsp train --acm) on the same trace, incremental")
    p.add_argument("--acm-thresholds", type=float, nargs="+", default=[0.25, 0.5, 0.9],
                   help="the ACM model's budgets: gate thresholds (default 0.25 0.5 0.9)")
    ort_rows.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..model.device import resolve_device
    from ..model.registry import load_model, load_tokenizer, weight_format
    from .acm_bench import print_acm
    from .report import plot_runs, print_run

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_model(args.model, str(device), weights=args.weights)
    tokenizer = load_tokenizer(args.model)
    acm = load_model(args.acm_model, str(device)) if args.acm_model else None
    runs = []
    with tempfile.TemporaryDirectory(prefix="vqlsp-onnx-") as scratch:
        ort = ort_rows.strategies(model, args, device, Path(scratch))
        for tokens in args.tokens:
            result = bench_one(model, tokenizer, tokens, args, ort, acm)
            result.update(model=args.model or "default", device=str(device), threads=torch.get_num_threads(),
                          weights=weight_format(model))
            print_run(result)
            if acm is not None:
                print_acm(result, result["acm"])
            runs.append(result)
    summary = dict(runs[-1])
    if len(runs) > 1:
        summary["runs"] = runs
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        plot_runs(runs, args.plot)
        print(f"wrote {args.plot}")
    return 0


def bench_one(model, tokenizer, tokens: int, args: argparse.Namespace, ort: dict | None = None, acm=None) -> dict:
    import torch

    from ..engine.baselines import DenseStrategy, PrefixCacheStrategy
    from ..engine.session import IncrementalSession
    from .traces import bbc_document, make_trace

    doc = bbc_document(tokenizer, tokens)
    trace = make_trace(args.trace, tokenizer, doc, args.warmup + args.edits, args.seed)
    kinds = {"incremental": IncrementalSession, "prefix": PrefixCacheStrategy, "dense": DenseStrategy}
    if args.no_dense_check:
        kinds.pop("dense")
    kinds.update(ort or {})
    strategies, setup_ms = {}, {}
    for name, cls in kinds.items():
        start = time.perf_counter()
        static = {"auto": None, "on": True, "off": False}[getattr(args, "static", "auto")]
        extra = {"profile": args.profile, "static": static} if name == "incremental" else {}
        strategies[name] = cls(model, doc.ids, args.policy, max_drift=args.max_drift, **extra)
        setup_ms[name] = (time.perf_counter() - start) * 1e3
    records: dict[str, list] = {name: [] for name in strategies}
    prob_diffs, hidden_diffs = [], []
    agreement = ort_rows.Agreement("dense" if "dense" in strategies else "incremental")
    with torch.no_grad():
        for i, call in enumerate(trace):
            for name, strategy in strategies.items():
                records[name].append(strategy.apply(call))
            if "dense" in strategies:
                inc = strategies["incremental"].outputs(hidden=True)
                ref = strategies["dense"].outputs(hidden=True)
                if inc.probabilities is not None:
                    prob_diffs.append((inc.probabilities - ref.probabilities).abs().max().item())
                if len(ref.hidden):
                    hidden_diffs.append((inc.hidden - ref.hidden).abs().max().item())
            if ort:
                agreement.record(strategies)
            if i % 10 == 9:
                print(f"  {tokens} tokens: {i + 1}/{len(trace)} edits", file=sys.stderr)
    records = {name: recs[args.warmup:] for name, recs in records.items()}
    result = summarize(tokens, args, strategies["incremental"], records, prob_diffs, setup_ms, len(doc.ids))
    result["max_abs_hidden_diff"] = max(hidden_diffs) if hidden_diffs else None
    if ort:
        speedup, fastest = ort_rows.ratios(records, result["strategies"])
        result["speedup"].update(speedup)
        result["ort"] = {"fastest_dense": fastest, "agreement": agreement.summary(), **ort_rows.describe(ort)}
    if args.policy == "stable":
        result["settle"] = settle(model, strategies["incremental"], records.get("dense"))
    if acm is not None:  # the ACM model on the same trace, at each budget (``acm_bench.py``)
        from .acm_bench import bench_acm

        result["acm"] = bench_acm(acm, doc.ids, trace, args.acm_thresholds, args)
        result["acm_model"], result["acm_learners"] = args.acm_model, acm.cfg.acm.learners
    return result


def settle(model, session, dense_records) -> dict:
    """Re-index the ids the trace left drifted (what the server does when the writer pauses):
    what it costs, and its results against a dense forward on exact ids."""
    from ..engine.baselines import DenseStrategy

    drift = session.drift
    stats = session.reindex()
    exact = DenseStrategy(model, session.token_ids, "exact")
    p, ref = session.outputs().probabilities, exact.outputs().probabilities
    return {
        "drift_before": drift,
        "ms": stats.ms,
        "rows_changed": sum(stats.rows_changed),
        "dense_ms_median": statistics.median(d.ms for d in dense_records) if dense_records else None,
        "max_abs_prob_diff_vs_exact_dense": None if p is None else (p - ref).abs().max().item(),
    }


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summarize(tokens, args, session, records, prob_diffs, setup_ms, doc_tokens) -> dict:
    inc = records["incremental"]
    strategies = {
        name: {
            "ops_median": statistics.median(s.total_ops for s in recs),
            "ms_median": statistics.median(s.ms for s in recs),
            "ms_p95": _p([s.ms for s in recs], 0.95),
            "setup_ms": setup_ms[name],
        }
        for name, recs in records.items()
    }
    per_layer = list(zip(*(s.rows_changed for s in inc)))
    flips = list(zip(*(s.code_flips for s in inc)))
    categories = sorted({c for s in inc for c in s.ops})
    result = {
        "tokens": tokens,
        "document_tokens": doc_tokens,
        "trace": args.trace,
        "policy": args.policy,
        "edits": len(inc),
        "strategies": strategies,
        "speedup": {},
        "max_abs_prob_diff": max(prob_diffs) if prob_diffs else None,
        "state_bytes_per_token": session.state_bytes_per_token(),
        "rows_changed_per_layer_median": [statistics.median(r) for r in per_layer],
        "rows_changed_per_layer_mean": [statistics.fmean(r) for r in per_layer],
        "code_flips_per_layer_mean": [statistics.fmean(r) for r in flips],
        "changed_fraction_median": statistics.median(s.changed_fraction() for s in inc),
        "incremental_ops_by_category_mean": {c: statistics.fmean(s.ops[c] for s in inc) for c in categories},
        "reindexed": sum(s.reindexed for s in inc),
        "static_loop": session.static,
        "static_redos": sum(s.redos for s in inc),
        "tokens_changed_per_edit_median": statistics.median(s.rows_changed[0] for s in inc) if inc else 0,
    }
    if inc and inc[0].stage_ms:
        stages = sorted({k for s in inc for k in s.stage_ms})
        result["incremental_stage_ms_mean"] = {k: statistics.fmean(s.stage_ms.get(k, 0.0) for s in inc) for k in stages}
    if inc and inc[0].layer_ms:
        result["incremental_layer_ms_mean"] = [statistics.fmean(r) for r in zip(*(s.layer_ms for s in inc))]
    sp = result["speedup"]
    if "dense" in records:
        dense = records["dense"]
        sp["ops_vs_dense_median"] = statistics.median(d.total_ops / max(i.total_ops, 1) for d, i in zip(dense, inc))
        sp["ms_vs_dense_median"] = statistics.median(d.ms / i.ms for d, i in zip(dense, inc))
        sp["work_efficiency_median"] = statistics.median(
            d.ms * i.changed_fraction() / i.ms for d, i in zip(dense, inc)
        )
    prefix = records["prefix"]
    sp["ops_vs_prefix_median"] = statistics.median(p.total_ops / max(i.total_ops, 1) for p, i in zip(prefix, inc))
    sp["ms_vs_prefix_median"] = statistics.median(p.ms / i.ms for p, i in zip(prefix, inc))
    return result
