#!/usr/bin/env python
"""GPU checks of the incremental engine, prepared for a session that has a CUDA device.

Run from the repository root (about two minutes on an H100/H200 once the model is cached):

    PYTHONPATH=server python scripts/gpu_check.py [--tokens 1024 4096] [--edits 30] [--json out.json]

For each length it replays the same atomic edit trace (stable positions) through the
incremental session (row sets padded to buckets, ``engine/buckets.py``) and a dense re-run
on the same GPU, and prints what issue 14 asks for:

* engine apply p50 / p95 (ms, synchronized) and dense p50; their per-edit ratio;
* max |p_incremental - p_dense| over the trace (target <= 1e-4);
* host syncs inside the layer loop: one more edit is applied under
  ``torch.cuda.set_sync_debug_mode("error")`` and the first syncing line of the engine is
  printed (the target is none; the layer loop still reads row counts on the host, so this
  names the next one to remove).

Nothing here runs without CUDA: it exits with code 2 and says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import traceback


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--edits", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-buckets", action="store_true", help="unpadded row sets")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured", file=sys.stderr)
        return 2
    from vqlsp.bench.traces import bbc_document, make_trace
    from vqlsp.engine.baselines import DenseStrategy
    from vqlsp.engine.session import IncrementalSession
    from vqlsp.model.registry import load_model, load_tokenizer

    model, tokenizer = load_model(None, "cuda"), load_tokenizer(None)
    results = {"device": torch.cuda.get_device_name(), "buckets": not args.no_buckets, "runs": []}
    for tokens in args.tokens:
        doc = bbc_document(tokenizer, tokens)
        trace = make_trace("atomic", tokenizer, doc, args.warmup + args.edits + 1, 0)
        session = IncrementalSession(model, doc.ids, "stable", buckets=not args.no_buckets)
        dense = DenseStrategy(model, doc.ids, "stable")
        inc_ms, dense_ms, prob_diff = [], [], 0.0
        for i, call in enumerate(trace[:-1]):
            a, b = session.apply(call), dense.apply(call)
            if i >= args.warmup:
                inc_ms.append(a.ms)
                dense_ms.append(b.ms)
            diff = (session.outputs().probabilities - dense.outputs().probabilities).abs().max().item()
            prob_diff = max(prob_diff, diff)
        run = {
            "tokens": len(doc.ids),
            "apply_ms_p50": statistics.median(inc_ms),
            "apply_ms_p95": sorted(inc_ms)[int(0.95 * (len(inc_ms) - 1))],
            "dense_ms_p50": statistics.median(dense_ms),
            "ms_vs_dense_median": statistics.median(d / i for d, i in zip(dense_ms, inc_ms)),
            "max_abs_prob_diff": prob_diff,
            "first_sync_in_engine": first_sync(session, trace[-1]),
        }
        results["runs"].append(run)
        print(json.dumps(run, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def first_sync(session, call) -> str | None:
    """Apply one edit with CUDA sync debugging set to raise inside each layer of the update
    (not around it: the edit's plan is built on the host before the loop); the engine line
    that synced first, or None."""
    import torch

    layer = session._layer

    def strict_layer(*args, **kwargs):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return layer(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    session._layer = strict_layer
    try:
        session.apply(call)
    except RuntimeError as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/vqlsp/" in f.filename]
        where = frames[-1] if frames else None
        return f"{where.filename}:{where.lineno}: {where.line}" if where else str(exc)
    finally:
        session._layer = layer
    return None


if __name__ == "__main__":
    sys.exit(main())
