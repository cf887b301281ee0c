"""ACM models in the engine benchmark, and the accuracy / compute trade-off report.

``bench_acm`` replays the engine benchmark's edit trace on an ACM checkpoint
(``model/acm.py``) at several budgets (gate thresholds), incremental engine only,
and reports per edit what ``vqlsp bench engine`` reports for the plain model: ops
and ms (median, p95), plus the learners each changed row ran. At the end of each
budget's trace the session is compared with a dense forward of the same ACM model
(always: it is one forward).

``vqlsp bench acm`` joins ``out/acm-eval.json`` of ``vqlsp train --acm`` (test
accuracy and mean learners per token at each budget) with an engine benchmark's
JSON (ms and ops per edit at the same budgets) into a Markdown table and a PNG:
document and span accuracy against mean learners per token and against ms per edit,
beside the VQ model without ACM.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def bench_acm(model, doc_ids: list[int], trace: list, thresholds: list[float], args) -> list[dict]:
    """Incremental engine on ``model`` (ACM) over ``trace`` at each threshold (the first
    ``args.warmup`` calls unmeasured)."""
    import torch

    from ..engine.session import IncrementalSession
    from ..model.acm import set_threshold

    out = []
    for threshold in thresholds:
        set_threshold(model, threshold)
        session = IncrementalSession(model, doc_ids, args.policy, max_drift=args.max_drift)
        built = session.last_stats
        with torch.no_grad():
            records = [session.apply(call) for call in trace][args.warmup :]
        with torch.no_grad():  # one dense forward: the session must still equal it
            ref = model(torch.tensor([session.token_ids], device=model.device), session.position_ids[None])
            p = model.document_head(ref.hidden).float().softmax(-1)[0]
            check = (session.outputs().probabilities - p).abs().max().item()
        ran = [sum(s.learners) for s in records]
        finished = [sum(s.rows_changed) for s in records]
        out.append({
            "threshold": threshold,
            "ops_median": statistics.median(s.total_ops for s in records),
            "mlp_ops_median": statistics.median(s.ops["mlp"] for s in records),
            "ms_median": statistics.median(s.ms for s in records),
            "ms_p95": sorted(s.ms for s in records)[int(round(0.95 * (len(records) - 1)))],
            "learners_per_changed_row": sum(ran) / max(1, sum(finished)),
            "learners_per_token_document": sum(built.learners) / max(1, sum(built.rows_changed)),
            "rows_changed_per_layer_mean": [statistics.fmean(r) for r in zip(*(s.rows_changed for s in records))],
            "max_abs_prob_diff_vs_dense_at_end": check,
        })
    return out


def print_acm(plain: dict, acm: list[dict]) -> None:
    inc = plain["strategies"]["incremental"]
    print(f"  ACM model, incremental, same trace ({plain['edits']} edits):")
    print(f"  {'threshold':>9} {'learners/row':>12} {'ops median':>14} {'ms median':>10} {'ms p95':>8}"
          f" {'ops vs plain':>12} {'ms vs plain':>11}")
    print(f"  {'plain':>9} {'-':>12} {inc['ops_median']:>14,.0f} {inc['ms_median']:>10.1f} {inc['ms_p95']:>8.1f}")
    for r in acm:
        print(f"  {r['threshold']:>9.2f} {r['learners_per_changed_row']:>12.2f} {r['ops_median']:>14,.0f}"
              f" {r['ms_median']:>10.1f} {r['ms_p95']:>8.1f} {inc['ops_median'] / r['ops_median']:>12.2f}"
              f" {inc['ms_median'] / r['ms_median']:>11.2f}")
    print("  rows changed per layer (mean), plain: " + " ".join(f"{v:.0f}" for v in plain["rows_changed_per_layer_mean"]))
    for r in acm:
        print(f"  ... ACM at {r['threshold']:.2f}: " + " ".join(f"{v:.0f}" for v in r["rows_changed_per_layer_mean"]))


# --- vqlsp bench acm: the trade-off table and plot -------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval", required=True, help="acm-eval.json of `vqlsp train --acm`")
    p.add_argument("--engine", required=True, help="JSON of `vqlsp bench engine --acm-model ...`")
    p.add_argument("--markdown", help="write the table here")
    p.add_argument("--plot", help="write the PNG here")


def tradeoff_rows(evaluation: dict, engine: dict) -> list[dict]:
    """One row per model: the plain VQ model, then each ACM budget (joined on the threshold)."""
    inc = engine["strategies"]["incremental"]
    plain = evaluation["plain"]
    rows = [{"model": "VQ (no ACM)", "threshold": None, "learners": None, "document": plain["document"],
             "span": plain["span"], "ms": inc["ms_median"], "ops": inc["ops_median"]}]
    speed = {r["threshold"]: r for r in engine.get("acm", [])}
    for b in evaluation["budgets"]:
        e = speed.get(b["threshold"], {})
        rows.append({"model": "VQ + ACM", "threshold": b["threshold"], "learners": b["mean_learners"],
                     "document": b["document"], "span": b["span"], "ms": e.get("ms_median"),
                     "ops": e.get("ops_median")})
    return rows


def markdown(rows: list[dict], evaluation: dict, engine: dict) -> str:
    test = evaluation.get("test_set", {})
    lines = [
        f"Test set: {test.get('documents', '?')} BBC articles (first {test.get('document_tokens', '?')} tokens) "
        f"and {test.get('spans', '?')} sentiment spans; engine: {engine['tokens']}-token BBC document, "
        f"{engine['edits']} {engine['trace']} edits, {engine['policy']} positions, medians.",
        "",
        "| model | gate threshold | mean learners / token | document acc | span acc | ms / edit | ops / edit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        threshold = "-" if r["threshold"] is None else f"{r['threshold']}"
        learners = "all (plain MLP)" if r["learners"] is None else f"{r['learners']:.2f}"
        ms = "-" if r["ms"] is None else f"{r['ms']:.1f}"
        ops = "-" if r["ops"] is None else f"{r['ops'] / 1e6:.1f} M"
        lines.append(f"| {r['model']} | {threshold} | {learners} | {r['document']:.3f} | {r['span']:.3f} | {ms} | {ops} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str, learners_per_mlp: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    acm = [r for r in rows if r["threshold"] is not None]
    plain = rows[0]
    for task, marker in (("document", "o"), ("span", "s")):
        axes[0].plot([r["learners"] for r in acm], [r[task] for r in acm], marker=marker, label=f"ACM {task}")
        axes[0].scatter([learners_per_mlp], [plain[task]], marker="*", s=150, label=f"no ACM {task}")
        timed = [r for r in acm if r["ms"] is not None]
        axes[1].plot([r["ms"] for r in timed], [r[task] for r in timed], marker=marker, linestyle="none",
                     label=f"ACM {task}")  # ms is noisy under load: points, not a curve
        axes[1].scatter([plain["ms"]], [plain[task]], marker="*", s=150, label=f"no ACM {task}")
    axes[0].set_xlabel("mean learners per token (of 4)")
    axes[1].set_xlabel("ms per edit (median, incremental engine)")
    for ax in axes:
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for r in acm:
        axes[0].annotate(f"t={r['threshold']}", (r["learners"], r["document"]), fontsize=7)
        if r["ms"] is not None:
            axes[1].annotate(f"{r['learners']:.1f}", (r["ms"], r["document"]), fontsize=7)
    fig.suptitle("ACM budget vs accuracy and edit latency (default model, CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args: argparse.Namespace) -> int:
    evaluation = json.loads(Path(args.eval).read_text())
    engine = json.loads(Path(args.engine).read_text())
    rows = tradeoff_rows(evaluation, engine)
    table = markdown(rows, evaluation, engine)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
        print(f"wrote {args.markdown}")
    if args.plot:
        plot(rows, args.plot, engine.get("acm_learners", 4))
        print(f"wrote {args.plot}")
    return 0
