"""The ACM trade-off report (``vqlsp bench acm``) from made-up figures."""

from __future__ import annotations

import argparse
import json

from vqlsp.bench import acm_bench


def test_tradeoff_table_and_plot(tmp_path, capsys):
    evaluation = {"test_set": {"documents": 10, "document_tokens": 128, "spans": 50},
                  "plain": {"document": 0.9, "span": 0.8},
                  "budgets": [{"threshold": 0.25, "mean_learners": 1.5, "document": 0.85, "span": 0.7},
                              {"threshold": 0.9, "mean_learners": 3.5, "document": 0.9, "span": 0.78}]}
    engine = {"tokens": 1024, "edits": 10, "trace": "atomic", "policy": "stable", "acm_learners": 4,
              "strategies": {"incremental": {"ms_median": 50.0, "ops_median": 2e8}},
              "acm": [{"threshold": 0.25, "ms_median": 40.0, "ops_median": 1.2e8},
                      {"threshold": 0.9, "ms_median": 48.0, "ops_median": 1.8e8}]}
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    (tmp_path / "engine.json").write_text(json.dumps(engine))
    args = argparse.Namespace(eval=str(tmp_path / "eval.json"), engine=str(tmp_path / "engine.json"),
                              markdown=str(tmp_path / "t.md"), plot=str(tmp_path / "t.png"))
    assert acm_bench.run(args) == 0
    table = (tmp_path / "t.md").read_text()
    assert "| VQ (no ACM) | - | all (plain MLP) | 0.900 | 0.800 | 50.0 | 200.0 M |" in table
    assert "| VQ + ACM | 0.25 | 1.50 | 0.850 | 0.700 | 40.0 | 120.0 M |" in table
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
