"""``vqlsp analyze FILE`` on a tiny checkpoint: per-token meters, sentences, HTML and PNG heat maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.clients.tiny_model import byte_tokenizer, write_tiny_checkpoint
from tests.engine.models import tiny_model

from vqlsp.analyze.document import analyze_document
from vqlsp.analyze.heatmap import render_html, render_png
from vqlsp.analyze.probes import ExitProbes, save_probes
from vqlsp.cli import main

TEXT = ("The market rose on Monday. Shares in <small> firms & banks gained!\n\n"
        "Analysts said the rally may not last. Oil fell.\n")


def _probes(dim: int, layers: list[int]) -> dict[str, ExitProbes]:
    g = torch.Generator().manual_seed(0)
    return {
        "document": ExitProbes("document", ["a", "b", "c"], layers, torch.randn(len(layers), 3, dim, generator=g),
                               torch.zeros(len(layers), 3), 0.6, {}),
        "span": ExitProbes("span", ["x", "y"], layers, torch.randn(len(layers), 2, dim, generator=g),
                           torch.zeros(len(layers), 2), 0.6, {}),
    }


def test_every_token_gets_each_meter_and_sentences_their_means(tmp_path):
    model = tiny_model("llama")
    dc = analyze_document(model, byte_tokenizer(), TEXT, probes=_probes(64, [1, 2]), max_edits=12,
                          section_tokens=48)
    n = len(dc.offsets)
    assert n == len(TEXT.encode()) and len(dc.sections) >= 2  # one token a byte, cut into sections
    assert dc.sections[0][0] == 0 and dc.sections[-1][1] == n
    assert set(dc.meters) == {"reuse", "reuse_rows", "active", "exit"}  # no ACM MLPs: no learners
    assert 10 <= dc.measured.sum() <= 14
    for key in ("reuse", "reuse_rows", "active"):
        assert not np.isnan(dc.meters[key]).any()
    assert ((dc.meters["reuse"] > 0) & (dc.meters["reuse"] <= 1)).all()
    assert len(dc.sentences) == 4
    first = dc.sentences[0]
    t0, t1 = first["tokens"]
    assert TEXT[first["chars"][0] : first["chars"][1]] == "The market rose on Monday."
    assert first["exit"] in (1.0, 2.0)
    assert first["active"] == pytest.approx(float(dc.meters["active"][t0:t1].mean()))
    assert dc.document["topic_exit_depth"] in (1, 2) and dc.document["topic_at_exit"] in ("a", "b", "c")

    render_html(dc, tmp_path / "heat.html", title="t <1>")
    page = (tmp_path / "heat.html").read_text()
    assert "&lt;small&gt;" in page and "<small>" not in page and "t &lt;1&gt;" in page
    assert page.count("<span style=") == n * 4  # every token, once per meter
    render_png(dc, tmp_path / "heat.png")
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"


def test_the_command_writes_the_heat_maps_and_the_figures(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny")
    save_probes(_probes(64, [1, 2]), tmp_path / "probes")
    article = tmp_path / "article.txt"
    article.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    code = main(["analyze", str(article), "--model", str(ckpt), "--probes", str(tmp_path / "probes"),
                 "--out", str(out), "--max-edits", "8"])
    assert code == 0
    summary = json.loads((out / "article.compute.json").read_text())
    assert summary["tokens"] == len(TEXT.encode()) and len(summary["sentences"]) == 4
    assert set(summary["timings_s"]) >= {"passes", "edits", "total"}
    assert (out / "article.heat.html").is_file() and (out / "article.heat.png").is_file()
    assert "document mean" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["analyze"], "give a FILE"),
    (["analyze", "EMPTY"], "is empty"),
    (["analyze", "FILE", "--probes", "NOWHERE"], "lacks document.safetensors"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny")
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "file.txt").write_text(TEXT)
    argv = [{"EMPTY": str(tmp_path / "empty.txt"), "FILE": str(tmp_path / "file.txt"),
             "NOWHERE": str(tmp_path / "nowhere")}.get(a, a) for a in argv]
    assert main([*argv, "--model", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqlsp: error:") and needle in err and err.count("\n") == 1
