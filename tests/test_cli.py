"""The command line as a user runs it: real subprocesses, real default model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import vqlsp
from vqlsp.model.checkpoint import save_checkpoint
from vqlsp.model.config import ModelConfig
from vqlsp.model.transformer import VQTransformer

SAMPLE = Path(vqlsp.__file__).parent / "samples" / "article.txt"


def vqlsp_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vqlsp", *args], capture_output=True, text=True, timeout=300
    )


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqlsp: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_version():
    result = vqlsp_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"vqlsp {vqlsp.__version__}"


@pytest.mark.real_model
def test_classify_sample_with_the_default_model():
    result = vqlsp_cli("classify", str(SAMPLE), "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out["probabilities"]) == {"business", "entertainment", "politics", "sports", "tech"}
    assert abs(sum(out["probabilities"].values()) - 1) < 1e-5
    assert out["label"] in ("business", "tech")  # an article about a chip maker's quarterly results
    assert out["tokens"] > 50


@pytest.mark.real_model
def test_info_describes_the_default_model():
    result = vqlsp_cli("info", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["architecture"].startswith("llama: 30 layers")
    assert "business" in info["document head"]


def test_missing_checkpoint(tmp_path):
    assert_user_error(vqlsp_cli("classify", str(SAMPLE), "--model", str(tmp_path / "none")), "does not exist")


def test_train_acm_refuses_a_bad_start_before_reading_data(tmp_path):
    out = str(tmp_path / "run")
    assert_user_error(vqlsp_cli("train", "--out", out, "--acm-from", str(tmp_path / "none")), "does not exist")
    assert_user_error(vqlsp_cli("train", "--out", out, "--acm-from", "default", "--acm-learners", "5"),
                      "--acm-learners", "must divide")


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{oops")
    assert_user_error(vqlsp_cli("classify", str(SAMPLE), "--model", str(tmp_path)), "not valid JSON")


def test_unknown_architecture(tmp_path):
    save_checkpoint(VQTransformer(ModelConfig.tiny("llama")), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["arch"] = "gpt2"
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert_user_error(vqlsp_cli("info", "--model", str(tmp_path)), "unknown architecture 'gpt2'")


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL bytes"), (b"caf\xe9 au lait", "not UTF-8 text")],
)
def test_file_that_is_not_text(tmp_path, content, needle):
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    assert_user_error(vqlsp_cli("classify", str(path)), needle)


def test_missing_input_file(tmp_path):
    assert_user_error(vqlsp_cli("classify", str(tmp_path / "absent.txt")), "cannot read")


@pytest.mark.real_model
def test_bench_engine_reports_ratios_equivalence_and_the_settle(tmp_path):
    out = tmp_path / "bench.json"
    result = vqlsp_cli("bench", "engine", "--tokens", "96", "--edits", "6", "--warmup", "1", "--threads", "1",
                       "--no-ort", "--json", str(out))  # the ONNX Runtime rows: tests/bench/test_ort_rows.py
    assert result.returncode == 0, result.stderr
    assert "ms_vs_dense_median" in result.stdout and "settle (re-index after the trace" in result.stdout
    r = json.loads(out.read_text())
    assert r["tokens"] == 96 and r["edits"] == 6 and r["policy"] == "stable"
    assert set(r["strategies"]) == {"incremental", "prefix", "dense"}
    assert r["speedup"]["ops_vs_dense_median"] > 1 and r["max_abs_prob_diff"] < 1e-4
    settle = r["settle"]  # the trace's atomic inserts and deletes left the ids drifted; re-indexed, exact again
    assert settle["drift_before"] > 0 and settle["rows_changed"] > 0
    assert settle["max_abs_prob_diff_vs_exact_dense"] < 1e-4

