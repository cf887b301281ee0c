"""``vqlsp eval``: test-set accuracy of a model against the dense base, policy agreement, reuse.

* ``vq_acc``: the checkpoint's own heads on its VQ features (test split).
* ``dense_acc``: the VQ-off base model with heads fitted the same way (logistic
  regression, pooling and L2 by validation) on its own features, at the same
  depth; ``dense_full_depth_acc`` at all layers. This is the accuracy VQ must not lose.
* ``vq_off_acc``: the checkpoint's own (fine-tuned) weights with VQ off, heads fitted
  the same way: what quantization costs the network it was trained into, as
  opposed to what the fine-tuning (with its task term) gained over the base.
* ``stable_vs_exact_agreement``: over random atomic edit traces (insert / delete /
  replace one token), how often the labels (document label, every span label)
  under the ``stable`` policy's position ids equal those under exact ids.
* ``reuse``: rows an atomic edit changes per layer (``reuse.py``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from ..engine.edits import TokenEdit, apply_edits
from ..engine.plan import EditPlan
from ..engine.positions import DEFAULT_MAX_DRIFT, StablePositions
from ..model.transformer import VQTransformer
from .reuse import random_atomic_edit, reuse_profile
from .sentiment import SpanDocument
from .tasks import TaskData, extract, fit_document_head, fit_span_head, head_test_accuracy

NEAR_TIE = 0.02  # a label whose top two probabilities are closer than this is a near tie
CLEAR = 0.2  # ... and one at least this far apart is clear of ties


def _spans_of(owner: Sequence[int]) -> list[tuple[int, int]]:
    """Token ranges of each span id (-1 = outside every span) in a per-token owner list."""
    spans: dict[int, list[int]] = {}
    for t, o in enumerate(owner):
        if o >= 0:
            spans.setdefault(o, [t, t + 1])[1] = t + 1
    return [tuple(spans[k]) for k in sorted(spans)]  # type: ignore[misc]


@torch.no_grad()
def policy_agreement(
    model: VQTransformer,
    docs: Sequence[SpanDocument],
    edits: int,
    *,
    seed: int = 0,
    max_drift: int = DEFAULT_MAX_DRIFT,
    vq: bool = True,
) -> dict:
    """Label agreement between ``stable`` and exact position ids along random edit traces of ``docs``.

    Each document is edited ``edits`` times in a row (the ids drift as in the engine);
    after each edit both position assignments are run and every head's labels compared.
    ``vq=False`` measures the same for the dense model (how much is VQ's doing). Besides
    the agreement: how far the probabilities move between the two (mean of the largest
    per-label change), how many labels sit near a tie under exact ids (top two within
    ``NEAR_TIE``), and the agreement of the labels at least ``CLEAR`` from a tie.
    """
    rng = random.Random(seed)
    policy = StablePositions(max_drift)
    same = total = 0
    doc_same = doc_total = 0
    shifts: list[float] = []  # per label: max |p_stable - p_exact|
    gaps: list[float] = []  # per label: top-two gap under exact ids
    agrees: list[bool] = []
    for doc in docs:
        ids = list(doc.ids)
        owner = [-1] * len(ids)
        for k, (s, e) in enumerate(doc.spans):
            owner[s:e] = [k] * (e - s)
        pos = torch.arange(len(ids))
        for _ in range(edits):
            edit = random_atomic_edit(len(ids), doc.ids, rng)
            pos, _ = policy.update(pos, EditPlan.build(len(ids), [edit]))
            left = owner[edit.start - 1] if edit.start > 0 else (owner[0] if owner else -1)
            ids = apply_edits(ids, [edit])
            owner = apply_edits(owner, [TokenEdit(edit.start, edit.end, (max(left, 0),) * len(edit.new_ids))])
            if not ids:
                break
            batch = torch.tensor([ids, ids], device=model.device)
            positions = torch.stack([pos, torch.arange(len(ids))]).to(model.device)
            hidden = model(batch, positions, vq=vq).hidden
            if model.document_head is not None:
                p = model.document_head(hidden).float().softmax(-1)
                doc_same += _compare(p[0:1], p[1:2], shifts, gaps, agrees)
                doc_total += 1
            spans = _spans_of(owner)
            if model.span_head is not None and spans:
                a, b = (model.span_head(hidden[i], spans).float().softmax(-1) for i in (0, 1))
                same += _compare(a, b, shifts, gaps, agrees)
                total += len(spans)
    all_same, all_total = same + doc_same, total + doc_total
    clear = [agree for agree, gap in zip(agrees, gaps) if gap >= CLEAR]
    return {
        "agreement": all_same / max(1, all_total),
        "document_agreement": doc_same / max(1, doc_total),
        "span_agreement": same / max(1, total),
        "labels_compared": all_total,
        "edits_per_trace": edits,
        "traces": len(docs),
        "mean_probability_shift": sum(shifts) / max(1, len(shifts)),
        "near_tie_share": sum(g < NEAR_TIE for g in gaps) / max(1, len(gaps)),
        "agreement_clear_of_ties": sum(clear) / max(1, len(clear)),
    }


def _compare(stable: torch.Tensor, exact: torch.Tensor, shifts: list, gaps: list, agrees: list) -> int:
    """Record each row's probability shift, exact-ids tie gap and agreement; return the agreements."""
    top2 = exact.topk(min(2, exact.shape[-1]), -1).values
    gap = (top2[:, 0] - top2[:, -1]).tolist()
    agree = (stable.argmax(-1) == exact.argmax(-1)).tolist()
    shifts += (stable - exact).abs().amax(-1).tolist()
    gaps += gap
    agrees += agree
    return sum(agree)


def evaluate_model(
    model: VQTransformer,
    dense_model: VQTransformer,
    data: TaskData,
    *,
    agreement_docs: int = 16,
    agreement_edits: int = 16,
    reuse_docs: Sequence[Sequence[int]] = (),
    reuse_edits: int = 20,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Everything ``vqlsp eval`` reports, as a JSON-able dict."""
    depth, full = model.cfg.depth, dense_model.cfg.n_layers
    vq_feats = extract(model, data, [depth], vq=True, splits=("test",), progress=progress)
    vq_acc = head_test_accuracy(model, vq_feats, data, depth)
    dense_feats = extract(dense_model, data, sorted({depth, full}), vq=False, progress=progress)
    own_feats = extract(model, data, [depth], vq=False, progress=progress) if model is not dense_model else dense_feats
    dim = dense_model.hidden_dim
    result: dict = {"depth": depth, "codebook_size": model.cfg.vq.codebook_size}
    for task, fit in (
        ("document", lambda feats, d: fit_document_head(feats, data, d, dim)),
        ("span", lambda feats, d: fit_span_head(feats, d, dim)),
    ):
        at_depth, at_full = fit(dense_feats, depth), fit(dense_feats, full)
        result[task] = {
            "dense_acc": at_depth.metrics["test_acc"],
            "vq_acc": vq_acc.get(task),
            "dense_full_depth_acc": at_full.metrics["test_acc"],
            "vq_off_acc": fit(own_feats, depth).metrics["test_acc"],
            "test_examples": int(
                len(data.doc_targets["test"]) if task == "document" else len(dense_feats.span["test"][1])
            ),
        }
    # agreement over BBC test articles (document + one span per article) and sentiment pseudo-documents
    rng = random.Random(seed)
    articles = [SpanDocument(ids, [(0, len(ids))], [0]) for ids in data.doc_ids["test"] if ids]
    picks = rng.sample(articles, min(agreement_docs // 2, len(articles)))
    picks += rng.sample(data.span_docs["test"], min(agreement_docs - len(picks), len(data.span_docs["test"])))
    agreement = policy_agreement(model, picks, agreement_edits, seed=seed)
    result["stable_vs_exact_agreement"] = agreement["agreement"]
    result["agreement"] = agreement
    if reuse_docs:
        result["reuse"] = reuse_profile(model, reuse_docs, reuse_edits, seed=seed)
    return result


def long_documents(id_lists: Sequence[Sequence[int]], tokens: int, count: int) -> list[list[int]]:
    """``count`` documents of exactly ``tokens`` tokens cut from a stream of token id lists."""
    stream = [t for ids in id_lists for t in ids]
    return [stream[i * tokens : (i + 1) * tokens] for i in range(min(count, len(stream) // tokens))]


def depth_table(model: VQTransformer, data: TaskData, depths: Sequence[int], *, vq: bool, progress: bool = True) -> dict:
    """Test accuracy of both heads, fitted the usual way, on features read after each of ``depths`` layers."""
    feats = extract(model, data, depths, vq=vq, progress=progress)
    return {
        d: {
            "document": fit_document_head(feats, data, d, model.hidden_dim).metrics["test_acc"],
            "span": fit_span_head(feats, d, model.hidden_dim).metrics["test_acc"],
        }
        for d in depths
    }
