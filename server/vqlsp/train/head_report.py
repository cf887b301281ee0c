"""How well a fitted head does on its validation split: numbers, a table, a confusion-matrix PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def head_metrics(labels: Sequence[str], truth: Sequence[int], predicted: Sequence[int]) -> dict:
    """Accuracy, per-label precision / recall / F1 / support, and the confusion matrix
    (rows: true label, columns: predicted), as plain JSON values."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    index = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=index, zero_division=0
    )
    return {
        "accuracy": float(np.mean(np.asarray(truth) == np.asarray(predicted))),
        "per_label": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confusion": confusion_matrix(truth, predicted, labels=index).tolist(),
        "labels": list(labels),
    }


def format_report(metrics: dict) -> str:
    labels = metrics["labels"]
    width = max(12, *(len(label) for label in labels))
    lines = [f"validation accuracy {metrics['accuracy']:.1%} "
             f"({sum(v['support'] for v in metrics['per_label'].values())} examples)", ""]
    lines.append(f"{'label':<{width}}  precision  recall     f1  support")
    for label, v in metrics["per_label"].items():
        lines.append(f"{label:<{width}}  {v['precision']:9.1%}  {v['recall']:6.1%}  {v['f1']:5.1%}  {v['support']:7d}")
    lines += ["", "confusion matrix (rows: true label, columns: predicted)"]
    cell = max(5, *(len(label) for label in labels))
    lines.append(" " * width + "  " + " ".join(f"{label[:cell]:>{cell}}" for label in labels))
    for label, row in zip(labels, metrics["confusion"]):
        lines.append(f"{label:<{width}}  " + " ".join(f"{n:>{cell}d}" for n in row))
    return "\n".join(lines)


def confusion_png(metrics: dict, path: Path, title: str) -> Path:
    """The confusion matrix as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = metrics["labels"]
    size = 2.5 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ConfusionMatrixDisplay(np.asarray(metrics["confusion"]), display_labels=labels).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45 if len(labels) > 4 else "horizontal"
    )
    ax.set_title(f"{title}\nvalidation accuracy {metrics['accuracy']:.1%}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
