#!/usr/bin/env python
"""GPU checks of the incremental engine, prepared for a session that has a CUDA device.

Run from the repository root (a few minutes on an H100/H200 once the model is cached):

    PYTHONPATH=server python scripts/gpu_check.py [--tokens 1024 4096] [--edits 30] [--json out.json]

For each length it replays the same atomic edit trace (stable positions) through the
incremental session and a dense re-run on the same GPU, and prints what issue 14 asks for:

* engine apply p50 / p95 (ms, synchronized) and dense p50; their per-edit ratio;
* max |p_incremental - p_dense| over the trace (target <= 1e-4);
* host syncs inside the layer loop: more edits are applied with
  ``torch.cuda.set_sync_debug_mode("error")`` held around the layer loop, and the first
  syncing line of the engine is printed (the target is none).

The layer loop is ``--loop static`` by default: the sync-free loop on fixed-size row sets
(``engine/static_loop.py``), replayed as one captured CUDA graph per shape
(``engine/graphs.py``); ``--no-graphs`` runs it eagerly. The sync check runs on the eager
static loop (the function that is captured) and on a graph replay. ``--loop dynamic`` is
the loop that reads row counts on the host (``--no-buckets``: its row sets unpadded); its
sync check names the first syncing line. Also reported: edits redone after a bucket
overflowed, the buckets used, and graphs captured.

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
    p.add_argument("--warmup", type=int, default=5, help="unmeasured edits first (graph captures happen here)")
    p.add_argument("--loop", choices=("static", "dynamic"), default="static")
    p.add_argument("--no-graphs", action="store_true", help="static loop: run it eagerly, not as CUDA graphs")
    p.add_argument("--no-buckets", action="store_true", help="dynamic loop: unpadded row sets")
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

    static = args.loop == "static"
    options = dict(static=static, graphs=static and not args.no_graphs, buckets=not args.no_buckets)
    model, tokenizer = load_model(None, "cuda"), load_tokenizer(None)
    results = {"device": torch.cuda.get_device_name(), "options": options, "runs": []}
    for tokens in args.tokens:
        doc = bbc_document(tokenizer, tokens)
        trace = make_trace("atomic", tokenizer, doc, args.warmup + args.edits + 3, 0)
        session = IncrementalSession(model, doc.ids, "stable", **options)
        dense = DenseStrategy(model, doc.ids, "stable")
        inc, dense_ms, prob_diff = [], [], 0.0
        for i, call in enumerate(trace[:-3]):
            a, b = session.apply(call), dense.apply(call)
            if i >= args.warmup:
                inc.append(a)
                dense_ms.append(b.ms)
            diff = (session.outputs().probabilities - dense.outputs().probabilities).abs().max().item()
            prob_diff = max(prob_diff, diff)
        inc_ms = [s.ms for s in inc]
        run = {
            "tokens": len(doc.ids),
            "apply_ms_p50": statistics.median(inc_ms),
            "apply_ms_p95": sorted(inc_ms)[int(0.95 * (len(inc_ms) - 1))],
            "dense_ms_p50": statistics.median(dense_ms),
            "ms_vs_dense_median": statistics.median(d / i for d, i in zip(dense_ms, inc_ms)),
            "max_abs_prob_diff": prob_diff,
            "rows_changed_per_layer_mean": [statistics.fmean(r) for r in zip(*(s.rows_changed for s in inc))],
        }
        if static:
            run["redos"] = sum(s.redos for s in inc)
            run["buckets"] = sorted({s.bucket for s in inc})
            run["graphs_captured"] = getattr(session._loop, "captures", 0)
            eager = session.fork()
            eager.graphs = False
            eager._loop = eager._layer_loop()
            run["first_sync_in_static_loop"] = first_sync(eager, trace[-3], "_loop")
            run["first_sync_in_graph_replay"] = first_sync(session, trace[-2], "_loop") if session.graphs else None
        else:
            run["first_sync_in_engine"] = first_sync(session, trace[-1], "_layer")
        results["runs"].append(run)
        print(json.dumps(run, indent=1), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def first_sync(session, call, attribute: str) -> str | None:
    """Apply one edit with CUDA sync debugging set to raise around the session's layer loop
    (``_loop``: the static loop, or its graph runner) or inside each layer of the dynamic loop
    (``_layer``), not around the whole update: the edit's plan is built on the host before
    the loop, and its counts read after it. The engine line that synced first, or None."""
    import torch

    inner = getattr(session, attribute)
    captured = []

    def strict(*args, **kwargs):
        graphs = getattr(inner, "graphs", None)
        if graphs is not None and args[3].shape_key(args[1]) not in graphs:
            captured.append(True)  # a new shape: eager run and capture (torch.cuda.graph synchronizes)
            return inner(*args, **kwargs)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return inner(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    setattr(session, attribute, strict)
    try:
        session.apply(call)
    except RuntimeError as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/vqlsp/" in f.filename]
        where = frames[-1] if frames else None
        return f"{where.filename}:{where.lineno}: {where.line}: {exc}" if where else str(exc)
    finally:
        setattr(session, attribute, inner)
    return "not checked: the edit's shape had no graph yet (captured now)" if captured else None


if __name__ == "__main__":
    sys.exit(main())
