"""The test-set suite end to end on a tiny model and made-up tasks: results, JSON, plots, report."""

from __future__ import annotations

import json

import torch
from tests.analyze.fakes import with_fake_acm
from tests.engine.models import tiny_model

from vqlsp.analyze.report import write_report
from vqlsp.analyze.suite import SuiteConfig, run_suite
from vqlsp.train.sentiment import SpanDocument
from vqlsp.train.tasks import TaskData


class FakeTokenizer:
    def get_vocab_size(self) -> int:
        return 256


def fake_tasks(tokenizer, scale, splits=("train", "validation", "test")) -> TaskData:
    """Random token ids; labels that depend on the first token, so probes can learn something."""
    g = torch.Generator().manual_seed(len(splits[0]))
    ids, targets, spans = {}, {}, {}
    for split in splits:
        seqs = [torch.randint(0, 256, (24,), generator=g).tolist() for _ in range(scale.eval_cap or 12)]
        ids[split] = seqs
        targets[split] = torch.tensor([s[0] % 2 for s in seqs])
        spans[split] = [SpanDocument(s, [(0, 8), (8, 16), (16, 24)], [s[0] % 2, s[8] % 2, s[16] % 2]) for s in seqs]
    return TaskData(["even", "odd"], ids, targets, spans, scale)


def test_suite_writes_every_output(tmp_path, monkeypatch):
    monkeypatch.setattr("vqlsp.train.tasks.load_tasks", fake_tasks)
    model = with_fake_acm(tiny_model("llama"))
    cfg = SuiteConfig(docs=10, spans=6, doc_edits=2, span_edits=1, probe_cap=16, relu_layers=1)
    results = run_suite(model, FakeTokenizer(), cfg, tmp_path, progress=False)
    doc, span = results["tasks"]["document"], results["tasks"]["span"]
    assert doc["examples"] == 10 and span["examples"] == 18  # 6 documents x 3 spans
    assert set(doc["scores"]) == {"exit", "reuse", "learners"}  # ACM MLPs: no down projection to read
    assert results["model"]["acm"]
    assert set(doc["agreement"]["pairs"]) == {"exit vs learners", "exit vs reuse", "learners vs reuse"}
    assert all(1 <= d <= model.cfg.depth for d in doc["scores"]["exit"])
    assert all(0 < r <= 1 for r in doc["scores"]["reuse"] + span["scores"]["reuse"])
    assert results["tokens"]["examples"] == 20 and set(results["tokens"]["scores"]) == {"reuse", "learners"}
    assert results["activations"]["relu"]["layers"][0]["values"] > 0  # the random OPT-shaped model
    assert (tmp_path / "probes" / "document.safetensors").is_file()
    write_report(results, tmp_path)
    assert json.loads((tmp_path / "analysis.json").read_text())["tasks"]["span"]["examples"] == 18
    for png in ("ranking_document.png", "ranking_span.png", "sparsity.png"):  # sparsity: the ReLU model
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "REPORT.md").read_text()
    assert "exit vs reuse: Spearman" in report and "**ReLU**" in report


def test_suite_on_a_plain_swiglu_model_reports_its_near_zeros(tmp_path, monkeypatch):
    monkeypatch.setattr("vqlsp.train.tasks.load_tasks", fake_tasks)
    model = tiny_model("llama")
    results = run_suite(model, FakeTokenizer(), SuiteConfig(docs=8, spans=4, doc_edits=1, span_edits=1,
                                                             probe_cap=16, relu_layers=1), tmp_path, progress=False)
    assert set(results["tasks"]["document"]["scores"]) == {"exit", "reuse", "active"}
    swiglu = results["activations"]["swiglu"]["layers"]
    assert len(swiglu) == model.cfg.n_layers and all(0 <= x["near_zero_share"]["0.01"] <= 1 for x in swiglu)
    write_report(results, tmp_path)
    assert "**swiglu**" in (tmp_path / "REPORT.md").read_text()
