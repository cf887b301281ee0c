"""The ONNX Runtime rows of ``vqlsp bench engine``: ratios, the fastest dense re-run, agreement."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from vqlsp.bench.ort_rows import Agreement, ratios
from vqlsp.engine.results import Outputs, UpdateStats


def records(**ms: list[float]) -> dict[str, list[UpdateStats]]:
    return {name: [UpdateStats(tokens=10, ms=v) for v in values] for name, values in ms.items()}


def table(recs: dict) -> dict:
    return {name: {"ms_median": sorted(r.ms for r in rs)[len(rs) // 2]} for name, rs in recs.items()}


def test_ratios_name_the_fastest_dense_rerun_by_median():
    recs = records(incremental=[1, 2, 4], dense=[10, 10, 10], ort_fp32=[9, 9, 30], ort_int8=[5, 6, 8])
    speedup, fastest = ratios(recs, table(recs))
    assert fastest == "ort_int8"
    assert speedup["ms_vs_ort_fp32_median"] == pytest.approx(7.5)  # per edit: 9, 4.5, 7.5
    assert speedup["ms_vs_ort_int8_median"] == pytest.approx(3.0)  # 5, 3, 2
    assert speedup["ms_vs_fastest_dense_median"] == speedup["ms_vs_ort_int8_median"]
    # a slow int8 graph: torch dense is the fastest alternative
    recs = records(incremental=[1, 1, 1], dense=[4, 4, 4], ort_fp32=[5, 5, 5], ort_int8=[6, 6, 6])
    speedup, fastest = ratios(recs, table(recs))
    assert fastest == "dense" and speedup["ms_vs_fastest_dense_median"] == pytest.approx(4)


def test_no_ort_rows_no_ratios():
    recs = records(incremental=[1], dense=[2])
    assert ratios(recs, table(recs)) == ({}, None)


def test_agreement_tracks_probability_gaps_and_labels():
    def row(*p):
        return SimpleNamespace(outputs=lambda: Outputs(torch.tensor(p), ["a", "b"]))

    agreement = Agreement("dense")
    agreement.record({"dense": row(0.6, 0.4), "ort_fp32": row(0.6, 0.4), "ort_int8": row(0.45, 0.55)})
    agreement.record({"dense": row(0.2, 0.8), "ort_fp32": row(0.2, 0.8), "ort_int8": row(0.3, 0.7)})
    summary = agreement.summary()
    assert summary["reference"] == "dense"
    assert summary["ort_fp32"] == {"max_abs_prob_diff": 0.0, "label_agreement": 1.0}
    assert summary["ort_int8"]["max_abs_prob_diff"] == pytest.approx(0.15)
    assert summary["ort_int8"]["label_agreement"] == 0.5


@pytest.mark.real_model
def test_bench_engine_runs_the_onnx_rows_in_the_same_run(tmp_path, default_graphs):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "vqlsp", "bench", "engine", "--tokens", "96", "--edits", "4", "--warmup", "1",
         "--threads", "1", "--onnx", str(default_graphs["fp32"].parent), "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "ms_vs_fastest_dense_median" in result.stdout and "fastest dense re-run" in result.stdout
    r = json.loads(out.read_text())
    assert set(r["strategies"]) == {"incremental", "prefix", "dense", "ort_fp32", "ort_int8"}
    assert r["ort"]["fastest_dense"] in ("dense", "ort_fp32", "ort_int8") and r["ort"]["threads"] == 1
    assert r["ort"]["agreement"]["ort_fp32"]["max_abs_prob_diff"] < 1e-4
    assert r["ort"]["agreement"]["ort_fp32"]["label_agreement"] == 1.0
    assert 0 <= r["ort"]["agreement"]["ort_int8"]["label_agreement"] <= 1
    for name in ("ort_fp32", "ort_int8"):
        assert r["strategies"][name]["ops_median"] == r["strategies"]["dense"]["ops_median"]
        assert r["speedup"][f"ms_vs_{name}_median"] > 0
