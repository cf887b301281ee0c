"""``vqlsp analyze FILE``: every compute meter over one text, token by token.

The text is tokenized and cut into sections as the language server cuts it
(``analysis.sections.cut_points``, ``section_tokens`` each), each section its own
state. Per token:

* ``reuse``: the share of the rows from this token on that the engine recomputes
  (mean over layers) when this token is replaced by another (``reuse.py``);
  measured at up to ``max_edits`` tokens spread over the text, each other token
  shows the nearest measured one's value;
* ``reuse_rows``: the same edit's rows recomputed per layer;
* ``exit``: the early-exit depth of the token's sentence (the sentiment probe,
  ``probes.py``); none outside sentences;
* ``active``: the share of MLP units active in the token's row (``activations.py``),
  mean over the layers the model runs;
* ``learners``: learners run per layer (ACM models only).

Sentences get each meter's mean over their tokens; the document gets its topic
probe's exit depth and the meters' means.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..analysis.sections import cut_points
from ..analysis.worker import token_spans
from ..engine.session import IncrementalSession
from ..model.transformer import VQTransformer
from ..text.segments import segment
from .activations import ActivationStats
from .probes import ExitProbes
from .reuse import edit_costs, sample_positions
from .trace import trace

METERS = {
    "reuse": "share of later rows recomputed when this token is edited (mean over layers)",
    "reuse_rows": "rows recomputed per layer when this token is edited",
    "exit": "early-exit depth of the token's sentence (sentiment probe)",
    "active": "share of MLP units active (|h| above the near-zero threshold), mean over layers",
    "learners": "ACM learners run per layer",
}


@dataclass
class DocumentCompute:
    text: str
    offsets: list[tuple[int, int]]  # each token's characters
    sections: list[tuple[int, int]]  # token ranges
    meters: dict[str, np.ndarray]  # per token, NaN where a meter says nothing
    measured: np.ndarray  # bool per token: its reuse was measured by an edit (not taken from a neighbour)
    sentences: list[dict] = field(default_factory=list)
    document: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "tokens": len(self.offsets), "sections": self.sections, "meters": {k: METERS[k] for k in self.meters},
            "document": self.document, "sentences": self.sentences, "timings_s": self.timings,
        }


def _nearest_fill(values: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Each unmeasured entry takes the value of the nearest measured one."""
    at = np.flatnonzero(measured)
    if not len(at):
        return values
    idx = np.arange(len(values))
    right = np.clip(np.searchsorted(at, idx), 0, len(at) - 1)
    left = np.clip(right - 1, 0, len(at) - 1)
    pick = np.where(np.abs(at[left] - idx) <= np.abs(at[right] - idx), at[left], at[right])
    return values[pick]


@torch.no_grad()
def analyze_document(
    model: VQTransformer, tokenizer, text: str, *, probes: dict[str, ExitProbes] | None = None,
    max_edits: int = 96, section_tokens: int = 256, language: str = "plaintext", seed: int = 0,
) -> DocumentCompute:
    """The per-token meters of ``text`` (see the module docstring)."""
    if not text.strip():
        raise ValueError("the text is empty: nothing to analyse")
    clock = time.perf_counter()
    enc = tokenizer.encode(text)
    ids, offsets = list(enc.ids), [tuple(o) for o in enc.offsets]
    starts, ends = [s for s, _ in offsets], [e for _, e in offsets]
    n, depth = len(ids), model.cfg.depth
    bounds, pos = [], 0
    for count, _ in cut_points(text, starts, ends, section_tokens, language):
        bounds.append((pos, pos + count))
        pos += count
    meters = {k: np.full(n, np.nan) for k in ("reuse", "reuse_rows", "active", "learners", "exit")}
    stats = ActivationStats(model.cfg.mlp, depth)
    hidden: dict[int, list[torch.Tensor]] = {}
    sentences = token_spans([(s.start, s.end) for s in segment(text, "sentence", language)], starts, ends)
    exits: list[int | None] = [None] * len(sentences)
    for a, b in bounds:
        tr = trace(model, torch.tensor([ids[a:b]], device=model.device), depths=range(1, depth + 1),
                   activations=stats)
        if tr.active is not None:
            meters["active"][a:b] = tr.active[:, 0].mean(0).cpu().numpy()
        if tr.learners is not None:
            meters["learners"][a:b] = tr.learners[:, 0].mean(0).cpu().numpy()
        for d, h in tr.hidden.items():
            hidden.setdefault(d, []).append(h[0].float().cpu())
        if probes is not None:
            for k, (_, _, t0, t1) in enumerate(sentences):
                if a <= t0 < b:  # a sentence belongs to the section it starts in
                    e = min(t1, b)
                    feats = {d: h[0, t0 - a : e - a].mean(0, keepdim=True).float().cpu() for d, h in tr.hidden.items()}
                    exits[k] = int(probes["span"].exit(feats)[0][0])
    timings = {"passes": time.perf_counter() - clock}
    clock = time.perf_counter()
    # reuse: edits spread over the sections in proportion to their length
    rng = random.Random(seed)
    measured = np.zeros(n, dtype=bool)
    for a, b in bounds:
        if not model.cfg.vq.enabled:
            break
        session = IncrementalSession(model, ids[a:b])
        count = max(1, round(max_edits * (b - a) / n))
        for cost in edit_costs(session, sample_positions(0, b - a, count, rng), seed=rng.randrange(1 << 30)):
            at = a + cost.position
            meters["reuse"][at], meters["reuse_rows"][at], measured[at] = cost.share, cost.rows_per_layer, True
    for key in ("reuse", "reuse_rows"):
        meters[key] = _nearest_fill(meters[key], measured)
    timings["edits"] = time.perf_counter() - clock
    for k, (_, _, t0, t1) in enumerate(sentences):
        if exits[k] is not None:
            meters["exit"][t0:t1] = exits[k]
    kept = {k: v for k, v in meters.items() if not np.isnan(v).all()}
    out = DocumentCompute(text, offsets, bounds, kept, measured, timings=timings)
    out.sentences = [_sentence(kept, measured, cs, ce, t0, t1) for cs, ce, t0, t1 in sentences]
    out.document = _document(model, kept, hidden, probes)
    out.document["activations"] = stats.summary()["layers"]
    return out


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


def _sentence(meters: dict[str, np.ndarray], measured: np.ndarray, cs: int, ce: int, t0: int, t1: int) -> dict:
    out: dict = {"chars": [cs, ce], "tokens": [t0, t1], "edits_measured": int(measured[t0:t1].sum())}
    for key, values in meters.items():
        out[key] = _mean(values[t0:t1])
    return out


def _document(model, meters: dict[str, np.ndarray], hidden: dict[int, list[torch.Tensor]], probes) -> dict:
    out: dict = {"mean": {k: _mean(v) for k, v in meters.items()}}
    if probes is not None and hidden:
        pooled = {d: torch.cat(h).mean(0, keepdim=True) for d, h in hidden.items()}  # token-weighted mean
        depth, pred = probes["document"].exit(pooled)
        probs = probes["document"].probabilities(pooled)[-1, 0]
        out["topic_exit_depth"] = int(depth[0])
        out["topic_at_exit"] = probes["document"].labels[int(pred[0])]
        out["topic_probe_last_layer"] = probes["document"].labels[int(probs.argmax())]
        out["exit_threshold"] = {t: probes[t].threshold for t in probes}
    return out
