"""The training pipeline end to end on a tiny random model and made-up data (seconds), and resumption."""

from __future__ import annotations

import json

import pytest
import torch

from vqlsp.model.checkpoint import load_checkpoint, register_base
from vqlsp.model.config import ModelConfig
from vqlsp.model.transformer import VQTransformer
from vqlsp.train.finetune import FinetuneConfig, finetune
from vqlsp.train.pipeline import TrainConfig, run_pipeline
from vqlsp.train.sentiment import SpanDocument
from vqlsp.train.tasks import DataScale, TaskData

SOURCE = "test:tiny-train-base"


def tiny_base() -> VQTransformer:
    torch.manual_seed(0)
    return VQTransformer(ModelConfig.tiny("llama", n_layers=3)).eval()


register_base(SOURCE, tiny_base)


def made_up_tasks(seed: int = 0) -> TaskData:
    """Documents whose topic is the token range they draw from; spans labelled by the half of that range."""
    g = torch.Generator().manual_seed(seed)
    labels = ["a", "b", "c"]
    doc_ids, doc_targets, span_docs = {}, {}, {}
    for split, n in (("train", 36), ("validation", 12), ("test", 12)):
        ys = torch.arange(n) % 3
        doc_ids[split] = [(torch.randint(0, 80, (24,), generator=g) + 80 * int(y)).tolist() for y in ys]
        doc_targets[split] = ys
        docs = []
        for _ in range(n // 2):
            ids, spans, span_labels = [], [], []
            for _ in range(4):
                y = int(torch.randint(0, 2, (1,), generator=g))
                span = (torch.randint(0, 40, (6,), generator=g) + 40 * y + 160).tolist()
                spans.append((len(ids), len(ids) + len(span)))
                ids += span
                span_labels.append(y)
            docs.append(SpanDocument(ids, spans, span_labels))
        span_docs[split] = docs
    return TaskData(labels, doc_ids, doc_targets, span_docs, DataScale(doc_tokens=24))


def tiny_config(**finetune) -> TrainConfig:
    ft = FinetuneConfig(steps=4, batch_size=2, lora_rank=2, w_margin=0.1, w_flip=0.5, w_task=0.5,
                        logit_positions=4, checkpoint_every=2, **finetune)
    return TrainConfig(DataScale(doc_tokens=24), k=4, window_tokens=16, codebook_windows=8, finetune=ft,
                       agreement_docs=2, agreement_edits=2, reuse_tokens=48, reuse_edits=2)


def run(out, cfg):
    data = made_up_tasks()
    text = [ids for ids in data.doc_ids["train"]]
    return run_pipeline(out, cfg, load_base=tiny_base, base_source=SOURCE, data=data, text_ids=text,
                        progress=False, log=lambda s: None)


def test_pipeline_end_to_end(tmp_path):
    report = run(tmp_path, tiny_config())
    ev = report["eval"]
    for task in ("document", "span"):
        assert set(ev[task]) >= {"dense_acc", "vq_acc"}
        assert 0.0 <= ev[task]["vq_acc"] <= 1.0
    assert 0.0 <= ev["stable_vs_exact_agreement"] <= 1.0
    assert len(ev["reuse"]["rows_changed_per_layer_mean"]) == 3
    assert json.loads((tmp_path / "eval.json").read_text())["document"] == ev["document"]
    assert all("task" in h for h in report["finetune"]["history_every_10"])
    # the shipped checkpoint loads on its own, with both heads, and stores the adapters as low-rank deltas
    model = load_checkpoint(tmp_path / "model")
    assert model.document_head.labels == ["a", "b", "c"] and model.span_head.labels == ["negative", "positive"]
    assert json.loads((tmp_path / "model" / "config.json").read_text())["format_version"] == 2
    assert model.cfg.vq.codebook_size == 4
    # re-running finds every stage done
    again = run(tmp_path, tiny_config())
    assert again["eval"] == ev


def test_finetune_resumes_exactly(tmp_path):
    data = made_up_tasks()
    windows = torch.tensor([ids[:16] for ids in data.doc_ids["train"]])
    cfg = FinetuneConfig(steps=4, batch_size=2, lora_rank=2, w_flip=0.5, w_margin=0.1, logit_positions=4,
                         checkpoint_every=2)

    straight = tiny_base()
    full = finetune(straight, windows, cfg, tmp_path / "a", progress=False)

    first = tiny_base()
    finetune(first, windows, FinetuneConfig(**{**cfg.__dict__, "steps": 2}), tmp_path / "b", progress=False)
    # a fresh process: same config with all 4 steps, resumed from step 2's checkpoint
    state = json.loads((tmp_path / "b" / "state" / "progress.json").read_text())
    assert state["step"] == 2
    resumed = tiny_base()
    history = finetune(resumed, windows, cfg, tmp_path / "b", progress=False)
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["loss"] == pytest.approx(full[-1]["loss"], rel=1e-4)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


def test_named_scales_carry_the_shipped_recipe():
    from vqlsp.model.checkpoint import read_config
    from vqlsp.model.registry import DEFAULT_MODEL_DIR

    shipped = read_config(DEFAULT_MODEL_DIR)
    for scale in ("cpu", "gpu"):
        cfg = TrainConfig.named(scale)
        assert cfg.k == shipped["model"]["vq"]["codebook_size"]
        assert cfg.exit_layer == shipped["model"]["exit_layer"]
        assert shipped["info"]["finetune"]["losses"] == {
            name: getattr(cfg.finetune, name) for name in ("w_hidden", "w_logits", "w_vq", "w_margin", "w_flip", "w_task")
        }
    overridden = TrainConfig.named("gpu", k=16, w_flip=10.0)
    assert (overridden.k, overridden.finetune.w_flip, overridden.finetune.w_task) == (16, 10.0, 1.0)
    with pytest.raises(ValueError, match="unknown scale"):
        TrainConfig.named("tpu")
