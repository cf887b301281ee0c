"""The task term of fine-tuning: labelled batches, and that it trains heads and adapters."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from tests.train.test_pipeline import made_up_tasks, tiny_base

from vqlsp.model.heads import DocumentHead, SpanHead
from vqlsp.train.finetune import FinetuneConfig, finetune
from vqlsp.train.supervision import LabelledText, task_loss


def test_labelled_batch_keeps_only_spans_inside_the_window():
    data = made_up_tasks()
    labelled = LabelledText.from_tasks(data)
    batch = labelled.sample(3, 4, 16, torch.Generator().manual_seed(0))
    assert batch.ids.shape == (7, 16) and batch.n_docs == 3
    assert batch.doc_lengths.tolist() == [16, 16, 16]  # articles are 24 tokens, cut to the window
    # span documents are 4 spans of 6 tokens: only the two that end by token 16 stay
    assert batch.spans == [[(0, 6), (6, 12)]] * 4
    assert len(batch.span_targets) == 8
    doc_rows = {tuple(ids[:16]) for ids in data.doc_ids["train"]}
    assert all(tuple(row.tolist()) in doc_rows for row in batch.ids[:3])


def test_task_loss_needs_both_heads():
    model = tiny_base()
    batch = LabelledText.from_tasks(made_up_tasks()).sample(2, 2, 16, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="both heads"):
        task_loss(model, torch.zeros(4, 16, model.hidden_dim), batch)


def with_heads(labels):
    model = tiny_base()
    model.set_heads(DocumentHead(model.hidden_dim, labels), SpanHead(model.hidden_dim, ["n", "p"]))
    return model


def test_task_term_trains_heads_from_zero(tmp_path):
    data = made_up_tasks()
    model = with_heads(data.doc_labels)
    windows = torch.tensor([ids[:16] for ids in data.doc_ids["train"]])
    # the task term alone, so the adapters can only have learned from it
    cfg = FinetuneConfig(steps=40, batch_size=2, lora_rank=2, w_hidden=0, w_logits=0, w_vq=0, w_task=1.0,
                         task_heads="zero", task_docs=6, task_span_docs=6, logit_positions=4, lr=1e-2,
                         warmup=2, checkpoint_every=100)
    history = finetune(model, windows, cfg, tmp_path, labelled=LabelledText.from_tasks(data), progress=False)
    # zeroed heads start at chance: ln 3 (topic) and ln 2 (span), averaged
    assert history[0]["task"] == pytest.approx((math.log(3) + math.log(2)) / 2, rel=1e-3)
    late = sum(h["task"] for h in history[-5:]) / 5
    assert late < 0.5 * history[0]["task"]
    # the adapters were trained too (the term reaches them through the features), and the heads are saved
    assert any(float(blk.q.lora_b.detach().abs().max()) > 0 for blk in model.blocks)
    saved = load_file(str(tmp_path / "state" / "trainable.safetensors"))
    torch.testing.assert_close(saved["span_head.linear.weight"], model.span_head.linear.weight.detach())
    with pytest.raises(ValueError, match="labelled"):
        finetune(with_heads(data.doc_labels), windows, cfg, tmp_path / "none", progress=False)


@pytest.mark.parametrize("start", ["fitted", "zero"])
def test_task_heads_start_where_asked(tmp_path, start):
    data = made_up_tasks()
    model = with_heads(data.doc_labels)
    before = model.document_head.linear.weight.detach().clone()
    windows = torch.tensor([ids[:16] for ids in data.doc_ids["train"]])
    cfg = FinetuneConfig(steps=1, batch_size=2, lora_rank=2, w_task=1.0, task_heads=start, lr=0.0,
                         logit_positions=4)
    finetune(model, windows, cfg, tmp_path, labelled=LabelledText.from_tasks(data), progress=False)
    after = model.document_head.linear.weight.detach()
    torch.testing.assert_close(after, before if start == "fitted" else torch.zeros_like(before))


def test_task_term_resumes_exactly(tmp_path):
    data = made_up_tasks()
    labelled = LabelledText.from_tasks(data)
    windows = torch.tensor([ids[:16] for ids in data.doc_ids["train"]])
    cfg = FinetuneConfig(steps=4, batch_size=2, lora_rank=2, w_task=1.0, task_docs=2, task_span_docs=2,
                         logit_positions=4, checkpoint_every=2)
    full = finetune(with_heads(data.doc_labels), windows, cfg, tmp_path / "a", labelled=labelled, progress=False)
    finetune(with_heads(data.doc_labels), windows, FinetuneConfig(**{**cfg.__dict__, "steps": 2}), tmp_path / "b",
             labelled=labelled, progress=False)
    resumed = finetune(with_heads(data.doc_labels), windows, cfg, tmp_path / "b", labelled=labelled, progress=False)
    assert [h["task"] for h in resumed] == pytest.approx([h["task"] for h in full], rel=1e-4)
