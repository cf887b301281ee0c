"""Do two compute meters rank examples alike? Spearman's rho, Kendall's tau-b, top-10% overlap.

Scores are "compute spent" (higher: harder). Exit layers are small integers with
many ties, so Kendall's tau-b (tie-corrected) is used, and the "hardest 10%" of a
meter is every example whose score reaches its 90th percentile (ties included);
their overlap is |A & B| / min(|A|, |B|), reported beside what two random sets
of those sizes would share by chance (max(|A|, |B|) / N in expectation).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

SCIPY_HINT = "pip install scipy"


def _stats():
    try:
        from scipy import stats
    except ImportError as exc:
        raise ModuleNotFoundError(f"the rank correlations need scipy; run: {SCIPY_HINT}") from exc
    return stats


def hardest(scores: np.ndarray, top: float) -> np.ndarray:
    """Indices of the examples whose score reaches the (1 - top) quantile."""
    if not len(scores):
        return np.zeros(0, dtype=int)
    cut = np.quantile(scores, 1.0 - top, method="higher")
    return np.flatnonzero(scores >= cut)


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def pair_agreement(a: np.ndarray, b: np.ndarray, top: float = 0.1) -> dict:
    """Rank agreement of two score vectors over the same examples."""
    n = len(a)
    out: dict = {"n": n}
    if n < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        out.update(spearman=None, spearman_p=None, kendall=None, kendall_p=None)
    else:
        stats = _stats()
        rho = stats.spearmanr(a, b)
        tau = stats.kendalltau(a, b)  # tau-b
        out.update(spearman=_finite(rho.statistic), spearman_p=_finite(rho.pvalue),
                   kendall=_finite(tau.statistic), kendall_p=_finite(tau.pvalue))
    ha, hb = hardest(a, top), hardest(b, top)
    if len(ha) and len(hb):
        shared = len(np.intersect1d(ha, hb))
        out.update(top_share=top, top_sizes=[len(ha), len(hb)], top_overlap=shared / min(len(ha), len(hb)),
                   top_overlap_chance=max(len(ha), len(hb)) / n)
    return out


def agreement(
    scores: dict[str, np.ndarray], classes: Sequence[str] | None = None, top: float = 0.1
) -> dict:
    """Every pair of meters, over all examples and within each class."""
    names = sorted(scores)
    out: dict = {"meters": names, "pairs": {}}
    for x, y in itertools.combinations(names, 2):
        key = f"{x} vs {y}"
        entry = {"all": pair_agreement(scores[x], scores[y], top)}
        if classes is not None:
            labels = np.asarray(classes)
            entry["per_class"] = {
                c: pair_agreement(scores[x][labels == c], scores[y][labels == c], top) for c in sorted(set(classes))
            }
        out["pairs"][key] = entry
    return out


def ranks(scores: np.ndarray) -> np.ndarray:
    """Average ranks (1 = least compute), ties sharing their mean rank."""
    return _stats().rankdata(scores)
