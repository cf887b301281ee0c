"""The suite's outputs: ``analysis.json``, PNG plots and ``REPORT.md`` stating the answers.

Plots: ``ranking_<task>.png`` (each pair of meters, example ranks against each
other, coloured by class), ``sparsity.png`` (near-zero share per layer at each
threshold, the spread over tokens, and the ``log10 |h|`` distribution per
layer), and the heat map of one test article (``heat.png``, ``heat.html``).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from .agreement import ranks


def write_json(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rankings(task: str, entry: dict, path: Path) -> None:
    plt = _plt()
    names = sorted(entry["scores"])
    pairs = list(itertools.combinations(names, 2))
    classes = np.asarray(entry["classes"])
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(4.2 * max(len(pairs), 1), 4), squeeze=False)
    for ax, (x, y) in zip(axes[0], pairs):
        rx, ry = ranks(np.array(entry["scores"][x])), ranks(np.array(entry["scores"][y]))
        for c in sorted(set(classes)):
            sel = classes == c
            ax.scatter(rx[sel], ry[sel], s=9, alpha=0.7, label=c)
        a = entry["agreement"]["pairs"][f"{x} vs {y}"]["all"]
        rho, tau = a.get("spearman"), a.get("kendall")
        ax.set_title(f"{x} vs {y}: rho {_f(rho)}, tau {_f(tau)}", fontsize=9)
        ax.set_xlabel(f"rank by {x} (1 = least compute)")
        ax.set_ylabel(f"rank by {y}")
    axes[0][0].legend(fontsize=7, markerscale=1.5)
    fig.suptitle(f"{task} examples ranked by each compute meter ({entry['examples']} test examples)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sparsity(activations: dict, path: Path) -> None:
    plt = _plt()
    kinds = [k for k in activations if activations[k]["layers"]]  # an ACM MLP has no activation to read
    if not kinds:
        return
    fig, axes = plt.subplots(len(kinds), 2, figsize=(12, 3.8 * len(kinds)), squeeze=False)
    for row, kind in zip(axes, kinds):
        stats = activations[kind]
        layers = [entry["layer"] for entry in stats["layers"]]
        ax = row[0]
        ax.plot(layers, [entry["zero_share"] for entry in stats["layers"]], "k-o", ms=3, label="exact zero")
        for eps in stats["epsilons"]:
            ax.plot(layers, [entry["near_zero_share"][str(eps)] for entry in stats["layers"]], "-o", ms=3,
                    label=f"|h| <= {eps:g}")
        q = [entry["token_near_zero_share_quantiles"] for entry in stats["layers"]]
        ax.fill_between(layers, [x["0.1"] for x in q], [x["0.9"] for x in q], alpha=0.2,
                        label=f"tokens p10-p90 (|h| <= {stats['main_eps']:g})")
        ax.set_xlabel("layer")
        ax.set_ylabel("share of MLP activations")
        ax.set_ylim(0, 1)
        ax.set_title(f"{kind}: zero / near-zero share per layer", fontsize=9)
        ax.legend(fontsize=7)
        ax = row[1]
        hist = np.array([entry["log10_abs_hist"] for entry in stats["layers"]], dtype=float)
        hist /= np.maximum(hist.sum(1, keepdims=True), 1)
        bins = stats["log10_bins"]
        ax.imshow(hist.T, aspect="auto", origin="lower", cmap="viridis",
                  extent=(layers[0] - 0.5, layers[-1] + 0.5, bins[0] - 0.25, bins[-1] + 0.25))
        ax.set_xlabel("layer")
        ax.set_ylabel("log10 |h| (non-zero values)")
        ax.set_title(f"{kind}: distribution of activation magnitudes per layer", fontsize=9)
        if layers and stats.get("source"):
            ax.text(0.01, 0.01, stats["source"][:110], transform=ax.transAxes, fontsize=6, color="w")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def markdown(results: dict, heat: dict | None = None) -> str:
    """The report: setup, the answers with their numbers, then the tables."""
    m, cfg = results["model"], results["config"]
    lines = ["# Compute analyses: which text needs how much compute", ""]
    lines.append(f"Model: {m['arch']} form, {m['layers']} layers, heads read layer {m['depth']}, {m['mlp']} MLPs, "
                 f"ACM {'on' if m['acm'] else 'off (no ACM MLPs in this model: the learners meter is absent)'}. "
                 f"Test subsets: {results['tasks']['document']['examples']} BBC articles (first {cfg['doc_tokens']} "
                 f"tokens, {cfg['doc_edits']} replaced tokens each), {results['tasks']['span']['examples']} sentiment "
                 f"snippets in context ({cfg['span_edits']} replaced tokens each); probes fitted on "
                 f"{results['probes']['document']['examples']} validation articles and "
                 f"{results['probes']['span']['examples']} validation snippets (half to fit, half to choose the L2 "
                 f"strength and the threshold). Wall time {results['seconds']['total']:.0f} s.")
    lines += ["", "## Answers", ""]
    for task, entry in results["tasks"].items():
        lines.append(f"**{task}**: early exit at a mean depth {entry['meters']['exit']['mean']:.2f} of {m['depth']} "
                     f"(threshold {entry['exit_threshold']}, accuracy {_pct(entry['exit_accuracy'])} vs "
                     f"{_pct(entry['last_layer_probe_accuracy'])} for the last layer's probe); an edit recomputes "
                     f"{_pct(entry['meters']['reuse']['mean'])} of the rows after it on average "
                     f"(per example {_pct(entry['meters']['reuse']['min'])} to {_pct(entry['meters']['reuse']['max'])})"
                     + (f"; {_pct(entry['meters']['active']['mean'])} of MLP units active" if "active" in
                        entry["meters"] else "") + ".")
        for pair, a in entry["agreement"]["pairs"].items():
            al = a["all"]
            per = a.get("per_class", {})
            within = ", ".join(f"{c} {_f(v.get('spearman'))}" for c, v in per.items())
            lines.append(f"- {pair}: Spearman {_f(al.get('spearman'))} (p {_g(al.get('spearman_p'))}), Kendall "
                         f"{_f(al.get('kendall'))}; hardest {int(cfg['top'] * 100)}% overlap "
                         f"{_pct(al.get('top_overlap'))} (chance {_pct(al.get('top_overlap_chance'))}); "
                         f"Spearman within class: {within}.")
        lines.append("")
    tok = results["tokens"]
    if tok["agreement"]["pairs"]:
        lines.append(f"**tokens** ({tok['examples']} edited tokens of the articles):")
        for pair, a in tok["agreement"]["pairs"].items():
            al = a["all"]
            lines.append(f"- {pair}: Spearman {_f(al.get('spearman'))}, Kendall {_f(al.get('kendall'))}, hardest "
                         f"{int(cfg['top'] * 100)}% overlap {_pct(al.get('top_overlap'))} "
                         f"(chance {_pct(al.get('top_overlap_chance'))}).")
        lines.append("")
    lines += ["## Activation sparsity", ""]
    for kind, stats in results["activations"].items():
        layers = stats["layers"]
        if not layers:
            continue
        main = str(stats["epsilons"][1])
        if kind == "relu":
            zs = [x["zero_share"] for x in layers]
            lines.append(f"**ReLU** ({stats['source']}): exact zeros {_pct(min(zs))} to {_pct(max(zs))} per layer "
                         f"(mean {_pct(float(np.mean(zs)))}).")
        else:
            near = [x["near_zero_share"][main] for x in layers]
            zs = [x["zero_share"] for x in layers]
            best = int(np.argmax(near))
            lines.append(f"**{kind}** ({stats['source']}): exact zeros {_pct(max(zs))} at most; |h| <= {main}: "
                         f"{_pct(min(near))} to {_pct(max(near))} per layer (mean {_pct(float(np.mean(near)))}, "
                         f"highest at layer {layers[best]['layer']}).")
        lines += ["", "| layer | exact zero | " + " | ".join(f"<= {e:g}" for e in stats["epsilons"])
                  + " | tokens p10 / p50 / p90 |", "|---|---|" + "---|" * len(stats["epsilons"]) + "---|"]
        for x in layers:
            q = x["token_near_zero_share_quantiles"]
            lines.append(f"| {x['layer']} | {_pct(x['zero_share'])} | "
                         + " | ".join(_pct(x["near_zero_share"][str(e)]) for e in stats["epsilons"])
                         + f" | {_pct(q['0.1'])} / {_pct(q['0.5'])} / {_pct(q['0.9'])} |")
        lines.append("")
    lines += ["## Per class", "", "| task | class | " + " | ".join(_meter_names(results)) + " |",
              "|---|---|" + "---|" * len(_meter_names(results))]
    for task, entry in results["tasks"].items():
        for c, means in entry["per_class_mean"].items():
            lines.append(f"| {task} | {c} | " + " | ".join(f"{means.get(k, float('nan')):.3f}"
                                                           for k in _meter_names(results)) + " |")
    if heat:
        lines += ["", "## One article, token by token", "",
                  f"`heat.html` / `heat.png`: {heat['tokens']} tokens; document means "
                  + ", ".join(f"{k} {v:.3g}" for k, v in heat["document"]["mean"].items() if v is not None) + "."]
    lines += ["", "Plots: `ranking_document.png`, `ranking_span.png`, `sparsity.png`, `heat.png`. "
              "Numbers: `analysis.json`.", ""]
    return "\n".join(lines)


def _g(v) -> str:
    return "-" if v is None else f"{v:.1e}"


def _meter_names(results: dict) -> list[str]:
    return sorted({k for e in results["tasks"].values() for k in e["meters"]})


def write_report(results: dict, out_dir: Path, heat: dict | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(results, out_dir / "analysis.json")
    for task, entry in results["tasks"].items():
        plot_rankings(task, entry, out_dir / f"ranking_{task}.png")
    plot_sparsity(results["activations"], out_dir / "sparsity.png")
    (out_dir / "REPORT.md").write_text(markdown(results, heat), encoding="utf-8")
