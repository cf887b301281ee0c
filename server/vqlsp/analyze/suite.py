"""``vqlsp analyze --test-sets``: every compute meter over the default tasks' test sets.

Examples are BBC News test articles (their first ``doc_tokens`` tokens, the
topic task) and sentiment test snippets in context (the span task). Per example
and meter, the compute spent:

* ``exit``: the early-exit depth (``probes.py``, probes fitted on validation);
* ``reuse``: share of the rows from an edited token on that the engine
  recomputes, mean over ``edits`` replaced tokens of the example (``reuse.py``);
* ``active``: share of MLP units active, mean over the example's tokens and
  the model's layers (``activations.py``; the compute of a method that skips
  near-zero units);
* ``learners``: ACM learners run per token and layer (ACM models only).

Then the meters' rankings and their agreement (``agreement.py``), over all
examples and per class, and per token (edited tokens: reuse against the same
token's activity and learners); activation statistics over every layer of the
network (the served model's layers, then the base model's beyond its early
exit) and, for the ReLU form, over a randomly initialised OPT-shaped model
(no OPT weights can be had offline: its zero share is that of random weights).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..engine.session import IncrementalSession
from ..model.transformer import VQTransformer
from .activations import ActivationStats
from .agreement import agreement
from .features import document_pass, span_pass
from .probes import ExitProbes, fit_task_probes, save_probes
from .reuse import edit_costs, sample_positions
from .trace import trace


@dataclass
class SuiteConfig:
    docs: int | None = 100  # BBC test articles (None: the whole split)
    spans: int | None = 400  # sentiment test snippets (None: the whole split)
    doc_tokens: int = 256  # tokens read from each article (the default heads' window)
    doc_edits: int = 6  # replaced tokens per article
    span_edits: int = 2  # replaced tokens per snippet
    probe_cap: int | None = None  # validation examples per task for the probes (None: all)
    top: float = 0.1  # the "hardest" share compared between meters
    relu_layers: int = 6  # layers of the random OPT-shaped model for the ReLU statistics
    seed: int = 0


def run_suite(
    model: VQTransformer, tokenizer, cfg: SuiteConfig, out_dir: Path, *, progress: bool = True,
    probes: Callable[[], dict[str, ExitProbes]] | None = None,
) -> dict:
    """Run everything; write the probes used under ``out_dir``; return the results (JSON-ready).
    ``probes`` gives the early-exit probes (default: fitted on validation, ``cfg.probe_cap``); it
    is called after the passes and edits, so cached probes may be fitted meanwhile."""
    from ..train.tasks import DataScale, load_tasks

    clock = {"start": time.perf_counter()}
    docs = load_tasks(tokenizer, DataScale(doc_tokens=cfg.doc_tokens, eval_cap=cfg.docs, seed=cfg.seed), ("test",))
    spans = load_tasks(tokenizer, DataScale(eval_cap=cfg.spans, seed=cfg.seed), ("test",))
    doc_ids, doc_labels = docs.doc_ids["test"], [docs.doc_labels[i] for i in docs.doc_targets["test"].tolist()]
    span_docs = spans.span_docs["test"]
    swiglu = ActivationStats(model.cfg.mlp, model.cfg.n_layers)
    d_pass = document_pass(model, doc_ids, layers=model.cfg.n_layers, activations=swiglu, progress=progress)
    s_pass, s_targets, where = span_pass(model, span_docs, progress=progress)
    clock["passes"] = time.perf_counter()
    rng = random.Random(cfg.seed)
    d_reuse, tokens = _doc_reuse(model, doc_ids, d_pass, cfg.doc_edits, rng, progress)
    s_reuse = _span_reuse(model, span_docs, where, cfg.span_edits, rng, progress)
    clock["edits"] = time.perf_counter()
    exit_probes = probes() if probes is not None else fit_task_probes(model, tokenizer, cap=cfg.probe_cap,
                                                                     seed=cfg.seed, progress=progress)
    save_probes(exit_probes, out_dir / "probes")
    clock["probes"] = time.perf_counter()

    from ..train.sentiment import LABELS as SENTIMENT_LABELS

    tasks = {}
    for task, fig, targets, reuse, label_names in (
        ("document", d_pass, docs.doc_targets["test"], d_reuse, doc_labels),
        ("span", s_pass, s_targets, s_reuse, [SENTIMENT_LABELS[i] for i in s_targets.tolist()]),
    ):
        depth, pred = exit_probes[task].exit(fig.stacked())
        scores = {"exit": depth.numpy().astype(float), "reuse": np.array(reuse)}
        if fig.active:
            scores["active"] = np.array([a.mean() for a in fig.active])
        if fig.learners:
            scores["learners"] = np.array([x.mean() for x in fig.learners])
        tasks[task] = {
            "examples": len(targets),
            "exit_accuracy": float((pred == targets).float().mean()),
            "last_layer_probe_accuracy": float((exit_probes[task].probabilities(fig.stacked())[-1].argmax(-1) == targets)
                                               .float().mean()),
            "exit_threshold": exit_probes[task].threshold,
            "meters": {k: _describe(v) for k, v in scores.items()},
            "per_class_mean": {c: {k: float(v[np.asarray(label_names) == c].mean()) for k, v in scores.items()}
                               for c in sorted(set(label_names))},
            "agreement": agreement(scores, label_names, cfg.top),
            "scores": {k: v.tolist() for k, v in scores.items()},
            "classes": label_names,
        }
    token_scores = {k: np.array(v) for k, v in tokens.items() if v}
    results = {
        "model": {"arch": model.cfg.arch, "layers": model.cfg.n_layers, "depth": model.cfg.depth,
                  "mlp": model.cfg.mlp, "acm": bool(d_pass.learners)},
        "config": asdict(cfg),
        "probes": {t: {"threshold": p.threshold, "key": p.key, **p.fit} for t, p in exit_probes.items()},
        "tasks": tasks,
        "tokens": {"examples": len(token_scores.get("reuse", [])),
                   "meters": {k: _describe(v) for k, v in token_scores.items()},
                   "agreement": agreement(token_scores, None, cfg.top), "scores": {k: v.tolist() for k, v in
                                                                                   token_scores.items()}},
        "activations": {model.cfg.mlp: {**swiglu.summary(), "source": "this model over the test articles; "
                                        f"layers 1-{model.cfg.depth} as served, later layers dense (base weights)"}},
    }
    if model.cfg.mlp != "relu":
        results["activations"]["relu"] = relu_statistics(doc_ids[:20], tokenizer, cfg.relu_layers, cfg.seed)
    clock["end"] = time.perf_counter()
    results["seconds"] = {
        "passes": clock["passes"] - clock["start"], "edits": clock["edits"] - clock["passes"],
        "probes": clock["probes"] - clock["edits"], "total": clock["end"] - clock["start"],
    }
    return results


def _describe(v: np.ndarray) -> dict:
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "p50": float(np.median(v)), "max": float(v.max())}


def _doc_reuse(model, doc_ids, d_pass, edits: int, rng: random.Random, progress: bool):
    """Per article: the mean reuse share over ``edits`` replaced tokens; and, per edited token, its
    reuse share beside its own activity and learners (token-level agreement)."""
    out: list[float] = []
    tokens: dict[str, list[float]] = {"reuse": [], "active": [], "learners": []}
    for k, ids in enumerate(tqdm(doc_ids, desc="article edits", disable=not progress)):
        session = IncrementalSession(model, ids)
        costs = edit_costs(session, sample_positions(0, len(ids), edits, rng), seed=rng.randrange(1 << 30))
        out.append(float(np.mean([c.share for c in costs])))
        for c in costs:
            tokens["reuse"].append(c.share)
            if d_pass.active:
                tokens["active"].append(float(d_pass.active[k][c.position]))
            if d_pass.learners:
                tokens["learners"].append(float(d_pass.learners[k][c.position]))
    return out, tokens


def _span_reuse(model, span_docs, where, edits: int, rng: random.Random, progress: bool) -> list[float]:
    """Per snippet: the mean reuse share over ``edits`` replaced tokens inside it, in its document."""
    out: list[float] = []
    sessions: dict[int, IncrementalSession] = {}
    for k, s, e in tqdm(where, desc="snippet edits", disable=not progress):
        if k not in sessions:
            sessions.clear()  # spans come document by document: keep one state
            sessions[k] = IncrementalSession(model, span_docs[k].ids)
        costs = edit_costs(sessions[k], sample_positions(s, e, edits, rng), seed=rng.randrange(1 << 30))
        out.append(float(np.mean([c.share for c in costs])))
    return out


@torch.no_grad()
def relu_statistics(seqs, tokenizer, layers: int, seed: int) -> dict:
    """Exact zeros of a ReLU MLP on real token sequences, in a randomly initialised OPT-125m-shaped
    model (transformers' own initialisation) converted to the normalized form."""
    from transformers import OPTConfig, OPTForCausalLM

    from ..model.config import VQConfig
    from ..model.convert import from_hf

    torch.manual_seed(seed)
    config = OPTConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=768, num_hidden_layers=layers,
                       ffn_dim=3072, num_attention_heads=12, word_embed_proj_dim=768, max_position_embeddings=2048)
    model = from_hf(OPTForCausalLM(config).eval(), VQConfig(enabled=False))
    stats = ActivationStats("relu", layers)
    for seq in seqs:
        trace(model, torch.tensor([list(seq)]), depths=[layers], activations=stats)
    return {**stats.summary(), "source": f"random-init OPT-125m-shaped model ({layers} layers, transformers' "
            "init), SmolLM2 token ids of the test articles: no OPT weights are available offline"}
