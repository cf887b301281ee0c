"""``vqlsp export --onnx`` and the ``--onnx`` options as a user runs them (real subprocesses, tiny checkpoint)."""

from __future__ import annotations

import re

import pytest
from tests.engine.models import tiny_model
from tests.test_cli import assert_user_error, vqlsp_cli

from vqlsp.model.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-checkpoint")
    save_checkpoint(tiny_model("opt"), directory)
    return directory


def test_export_writes_both_graphs_and_checks_them_against_torch(checkpoint, tmp_path):
    result = vqlsp_cli("export", "--onnx", str(tmp_path / "graphs"), "--model", str(checkpoint), "--int8")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "graphs" / "model.onnx").is_file() and (tmp_path / "graphs" / "model.int8.onnx").is_file()
    fp32 = re.search(r"fp32 vs torch on 64 random tokens: max_abs_hidden_diff (\S+), codes_differ_share (\S+), "
                     r"max_abs_prob_diff (\S+)", result.stdout)
    assert fp32, result.stdout
    assert float(fp32[1]) < 1e-4 and float(fp32[2]) == 0 and float(fp32[3]) < 1e-4
    assert "int8 vs torch on 64 random tokens" in result.stdout
    assert "Exporting aten::index" not in result.stderr


def test_a_directory_without_a_readable_graph_is_a_user_error(checkpoint, tmp_path):
    (tmp_path / "model.onnx").write_text("not a graph")
    assert_user_error(vqlsp_cli("eval", "--onnx", str(tmp_path), "--model", str(checkpoint)),
                      "not a readable ONNX graph")
