"""``vqlsp train-head`` end to end on a tiny random model: the report, the feature cache, the
checkpoint (``model`` option) and the extra head (``heads`` option) it writes, and the
analysis worker serving extra heads beside the model's own."""

from __future__ import annotations

import json
import random

import pytest
import torch

from clients.tiny_model import DOCUMENT_LABELS, SPAN_LABELS, write_tiny_checkpoint
from vqlsp.analysis.analyzers import DenseAnalyzer
from vqlsp.analysis.sections import SectionJob
from vqlsp.analysis.worker import AnalysisWorker, token_spans
from vqlsp.cli import main
from vqlsp.model.checkpoint import load_checkpoint
from vqlsp.model.head_files import HeadFileError, load_extra_heads, load_head
from vqlsp.model.registry import load_model, load_tokenizer
from vqlsp.text.segments import segment
from vqlsp.train.head_data import read_labelled
from vqlsp.train.head_features import checkpoint_fingerprint, example_features
from vqlsp.train.head_report import head_metrics
from vqlsp.train.train_head import _split

WORDS = {"cats": ["meow", "purr", "whiskers", "kitten"], "dogs": ["woof", "bark", "puppy", "fetch"]}


def labelled_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "cats" if i % 2 else "dogs"
        rows.append((" ".join(rng.choice(WORDS[label]) for _ in range(rng.randint(3, 8))) + f" {i}.", label))
    return rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VQLSP_CACHE", str(tmp_path / "cache"))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    return path


def train(data, out, tiny, kind, *extra):
    return main(["train-head", str(data), "--kind", kind, "--out", str(out), "--base", str(tiny),
                 "--device", "cpu", "--quiet", *extra])


def test_document_head_report_cache_and_outputs(tmp_path, tiny, capsys):
    data = write_jsonl(tmp_path / "pets.jsonl", labelled_rows(120))
    out = tmp_path / "pets"
    assert train(data, out, tiny, "document") == 0
    printed = capsys.readouterr().out
    assert "120 examples, 2 labels (cats 60, dogs 60)" in printed
    assert "features: 120 texts, layer 2, computed" in printed
    assert "validation accuracy" in printed and "confusion matrix" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["train"] + report["validation"] == 120 and report["validation"] == 24
    metrics = report["metrics"]
    assert sum(map(sum, metrics["confusion"])) == 24
    assert set(metrics["per_label"]) == {"cats", "dogs"}
    assert metrics["accuracy"] > 0.6  # separable by words, even on a random model's features
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same texts and split again, other settings: features from the cache, the model not loaded
    assert train(data, out, tiny, "document", "--name", "pets2") == 0
    printed = capsys.readouterr().out
    assert "from the cache" in printed and "model loaded" not in printed

    # the checkpoint: the base with this head as its document head, the span head kept
    model, base = load_model(out, "cpu"), load_model(tiny, "cpu")
    assert model.document_head.labels == ["cats", "dogs"] and model.document_head.name == "pets2"
    assert model.span_head.labels == SPAN_LABELS
    assert torch.equal(model.span_head.linear.weight, base.span_head.linear.weight)
    assert torch.equal(model.blocks[0].vq.codebook, base.blocks[0].vq.codebook)
    config = json.loads((out / "config.json").read_text())
    assert config["base"] == {"source": f"checkpoint:{tiny.resolve()}", "weights": "external"}
    assert load_tokenizer(out).to_str() == load_tokenizer(tiny).to_str()  # the base's, through the chain

    # the extra head: the same head, served beside the base's own
    (head,) = load_extra_heads(base, [out])
    assert head.kind == "document" and head.labels == ["cats", "dogs"]
    assert torch.allclose(head.linear.weight, model.document_head.linear.weight)


def test_training_features_in_bf16_validation_as_the_server_computes(tmp_path, tiny, capsys):
    data = write_jsonl(tmp_path / "pets.jsonl", labelled_rows(60))
    assert train(data, tmp_path / "a", tiny, "document", "--train-precision", "bf16") == 0
    printed = capsys.readouterr().out
    assert "48 training texts in bf16, 12 validation texts in float32" in printed
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["features"] == {"train": "bf16", "validation": "fp32"}

    # the validation features are the float32 model's (what the server computes), not bf16's
    model, tokenizer = load_model(tiny, "cpu", weights="fp32"), load_tokenizer(tiny)
    texts = [t for t, _ in labelled_rows(60)]
    fingerprint = checkpoint_fingerprint(tiny)
    everything, _, _ = example_features(lambda: model, fingerprint, tokenizer, "document", texts, progress=False,
                                        use_cache=False)
    in_bf16, _, _ = example_features(lambda: model, fingerprint, tokenizer, "document", texts, precision="bf16",
                                     progress=False, use_cache=False)
    assert not torch.allclose(in_bf16["mean"], everything["mean"], atol=1e-6)  # bf16 is a real change
    head, _ = load_head(tmp_path / "a")
    labelled = read_labelled(data)
    _, val = _split(labelled, 0.2, 0)
    with torch.no_grad():  # the report's confusion matrix is the head's on the float32 features
        predicted = head.linear(everything[head.pooling][val]).argmax(1).tolist()
    targets = torch.tensor(labelled.targets)[val].tolist()
    assert report["metrics"]["confusion"] == head_metrics(labelled.labels, targets, predicted)["confusion"]

    # float32 for every row: another split reads every feature from the cache
    assert train(data, tmp_path / "b", tiny, "document", "--train-precision", "fp32") == 0
    assert "computed (float32)" in capsys.readouterr().out
    assert train(data, tmp_path / "b", tiny, "document", "--train-precision", "fp32", "--seed", "3") == 0
    printed = capsys.readouterr().out
    assert "from the cache" in printed and "model loaded" not in printed


def test_span_head_and_a_worker_serving_several_heads(tmp_path, tiny):
    rows = labelled_rows(80, seed=1)
    data = write_jsonl(tmp_path / "pets.jsonl", rows)
    assert train(data, tmp_path / "kind", tiny, "span", "--name", "kind") == 0
    assert train(data, tmp_path / "topic", tiny, "document", "--name", "pets") == 0
    model = load_model(tiny, "cpu")
    extra = load_extra_heads(model, [tmp_path / "kind", tmp_path / "topic"])
    worker = AnalysisWorker(model, 1 << 30, extra_heads=extra)
    assert [h.name for h in worker.document_heads] == ["document", "pets"]
    assert [h.name for h in worker.span_heads] == ["span", "kind"]

    text = "Woof bark puppy. Meow purr kitten."
    tokenizer = load_tokenizer(tiny)
    enc = tokenizer.encode(text, add_special_tokens=False)
    job = SectionJob(uri="file:///p.txt", section=0, revision=1, ids=tuple(enc.ids), starts=tuple(a for a, _ in enc.offsets),
                     ends=tuple(b for _, b in enc.offsets), text=text, batches=None, unit="sentence",
                     position_policy="exact")
    result = worker.update(job, label_last=0)
    assert [o.head for o in result.labels] == ["document", "pets"]
    assert list(result.labels[0].probabilities) == DOCUMENT_LABELS
    assert list(result.labels[1].probabilities) == ["cats", "dogs"]
    assert [(s.start, s.head) for s in result.spans] == [(0, "span"), (0, "kind"), (17, "span"), (17, "kind")]

    # the extra heads read the same states as a dense forward
    dense = DenseAnalyzer(model, enc.ids)
    states = dense.hidden()
    want_doc = torch.softmax(extra[1].linear(states.mean(0) if extra[1].pooling == "mean" else states[-1]), -1)
    assert list(result.labels[1].probabilities.values()) == pytest.approx(want_doc.tolist(), abs=1e-4)
    found = token_spans([(s.start, s.end) for s in segment(text, "sentence")], job.starts, job.ends)
    spans = [(t0, t1) for _, _, t0, t1 in found]
    want_span = torch.softmax(extra[0](states, spans), -1)
    got = [list(s.probabilities.values()) for s in result.spans if s.head == "kind"]
    assert got == [pytest.approx(row, abs=1e-4) for row in want_span.tolist()]


def test_a_head_from_another_model_is_refused(tmp_path, tiny):
    data = write_jsonl(tmp_path / "pets.jsonl", labelled_rows(40))
    assert train(data, tmp_path / "pets", tiny, "document") == 0
    other = load_checkpoint(write_tiny_checkpoint(tmp_path / "other"))  # (unpacked: its weights are read)
    with torch.no_grad():
        other.blocks[0].mlp.down.weight.mul_(1.5)  # another model: same shapes, other features
    with pytest.raises(HeadFileError, match="trained on another model's features"):
        load_extra_heads(other, [tmp_path / "pets"])
    base = load_model(tiny, "cpu")
    with pytest.raises(HeadFileError, match="a head named 'pets' is served already"):
        load_extra_heads(base, [tmp_path / "pets", tmp_path / "pets" / "head.safetensors"])
    head, _ = load_head(tmp_path / "pets")
    assert head.name == "pets"


def test_name_of_an_own_head_is_refused(tmp_path, tiny, capsys):
    data = write_jsonl(tmp_path / "pets.jsonl", labelled_rows(40))
    assert train(data, tmp_path / "out", tiny, "span", "--name", "span") == 2
    assert "the name 'span' is taken by one of the model's own heads" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
