"""Printing and plotting engine-benchmark results."""

from __future__ import annotations


def print_run(r: dict) -> None:
    print(f"\n{r['tokens']} tokens, trace {r['trace']}, policy {r['policy']}, {r['edits']} edits "
          f"({r.get('device', '?')}, {r.get('threads', '?')} threads, {r.get('weights', 'fp32')} weights)")
    print(f"  {'strategy':<12} {'ops median':>14} {'ms median':>10} {'ms p95':>10}")
    for name, s in r["strategies"].items():
        print(f"  {name:<12} {s['ops_median']:>14,.0f} {s['ms_median']:>10.1f} {s['ms_p95']:>10.1f}")
    for key, value in r["speedup"].items():
        print(f"  {key:<28} {value:8.2f}")
    if (ort := r.get("ort")) is not None:
        print_ort(ort)
    diff = r["max_abs_prob_diff"]
    print(f"  max |p_inc - p_dense|        {diff if diff is None else f'{diff:.2e}'}")
    print(f"  state bytes per token        {r['state_bytes_per_token']:,}")
    print(f"  changed (row, layer) share   {r['changed_fraction_median']:.3f} (median)")
    if "incremental_stage_ms_mean" in r:
        print("  incremental ms by stage (mean): " + ", ".join(
            f"{k} {v:.1f}" for k, v in r["incremental_stage_ms_mean"].items()))
    if "incremental_layer_ms_mean" in r:
        print("  incremental ms per layer (mean): " + " ".join(f"{v:.1f}" for v in r["incremental_layer_ms_mean"]))
    rows = r["rows_changed_per_layer_mean"]
    print("  rows changed per layer (mean): " + " ".join(f"{v:.0f}" for v in rows))
    if (s := r.get("settle")) is not None:
        diff = s["max_abs_prob_diff_vs_exact_dense"]
        print(f"  settle (re-index after the trace, drift {s['drift_before']}): {s['ms']:.1f} ms, "
              f"{s['rows_changed']:,} (row, layer) pairs; |p - p_dense(exact ids)| "
              f"{diff if diff is None else f'{diff:.2e}'}")


def print_ort(ort: dict) -> None:
    """The ONNX Runtime rows' extras: the fastest dense re-run, and each graph against torch dense."""
    print(f"  fastest dense re-run         {ort['fastest_dense']} (ONNX Runtime on {ort['threads']} threads)")
    agreement = dict(ort["agreement"])
    reference = agreement.pop("reference")
    for name, a in agreement.items():
        print(f"  {name:<12} vs {reference}: max |p - p_{reference}| {a['max_abs_prob_diff']:.2e}, "
              f"same label {a['label_agreement']:.1%} of edits")


def plot_runs(runs: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    lengths = [r["tokens"] for r in runs]
    for key, label in (("ops_vs_dense_median", "ops vs dense"), ("ms_vs_dense_median", "ms vs dense"),
                       ("ms_vs_prefix_median", "ms vs prefix"), ("work_efficiency_median", "work efficiency"),
                       ("ms_vs_fastest_dense_median", "ms vs fastest dense (torch, ORT)")):
        values = [r["speedup"].get(key) for r in runs]
        if all(v is not None for v in values):
            left.plot(lengths, values, marker="o", label=label)
    left.set_xscale("log", base=2)
    left.set_xlabel("document tokens")
    left.set_ylabel("median ratio per edit")
    left.set_title(f"{runs[0]['trace']} edits, {runs[0]['policy']} positions")
    left.legend()
    for r in runs:
        right.plot(r["rows_changed_per_layer_mean"], label=f"{r['tokens']} tokens")
    right.set_xlabel("layer")
    right.set_ylabel("rows changed (mean per edit)")
    right.set_yscale("log")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
