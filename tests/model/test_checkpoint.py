"""Checkpoint directories: exact round trips and clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from vqlsp.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vqlsp.model.config import ModelConfig
from vqlsp.model.heads import DocumentHead, SpanHead
from vqlsp.model.transformer import VQTransformer


def tiny_with_heads(arch: str) -> VQTransformer:
    torch.manual_seed(0)
    model = VQTransformer(ModelConfig.tiny(arch)).eval()
    model.set_heads(DocumentHead(64, ["a", "b", "c"], "last"), SpanHead(64, ["neg", "pos"]))
    return model


@pytest.mark.parametrize("arch", ["opt", "llama"])
def test_round_trip_gives_identical_outputs(tmp_path, arch):
    model = tiny_with_heads(arch)
    save_checkpoint(model, tmp_path, info={"note": "test"})
    loaded = load_checkpoint(tmp_path)
    ids = torch.randint(0, 256, (1, 20))
    with torch.no_grad():
        a, b = model(ids), loaded(ids)
        assert torch.equal(a.hidden, b.hidden)
        assert all(torch.equal(x, y) for x, y in zip(a.codes, b.codes))
        assert torch.equal(model.document_head(a.hidden), loaded.document_head(b.hidden))
        spans = [(0, 5), (5, 20)]
        assert torch.equal(model.span_head(a.hidden[0], spans), loaded.span_head(b.hidden[0], spans))
    assert loaded.cfg == model.cfg
    assert loaded.document_head.labels == ["a", "b", "c"] and loaded.document_head.pooling == "last"
    assert json.loads((tmp_path / "config.json").read_text())["info"] == {"note": "test"}


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")


def test_directory_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "something-else"}', "not a vqlsp checkpoint"),
        ('{"format": "vqlsp-checkpoint", "format_version": 99}', "format_version"),
    ],
)
def test_corrupt_config(tmp_path, content, message):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path)


def test_corrupt_weights(tmp_path):
    save_checkpoint(tiny_with_heads("llama"), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    save_checkpoint(tiny_with_heads("llama"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["d_ff"] = 96
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(tmp_path)


def test_unknown_model_config_key(tmp_path):
    save_checkpoint(tiny_with_heads("llama"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["flash"] = True
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown model config keys: flash"):
        load_checkpoint(tmp_path)


def test_low_rank_deltas_round_trip_and_mark_version_2(tmp_path):
    from vqlsp.model.checkpoint import DELTA_U, register_base

    def base():
        torch.manual_seed(0)
        return VQTransformer(ModelConfig.tiny("llama")).eval()

    register_base("test:tiny-llama", base)
    model = base()
    torch.manual_seed(1)
    with torch.no_grad():  # a rank-2 update of one projection, a full change of a norm
        q = model.blocks[0].q.weight
        q += torch.randn(q.shape[0], 2) @ torch.randn(2, q.shape[1]) * 0.1
        model.blocks[1].norm1.weight += 0.5
    model.set_heads(DocumentHead(64, ["a", "b"]), None)
    save_checkpoint(model, tmp_path, base_source="test:tiny-llama", external_base=True, delta_rank=4)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["format_version"] == 2
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "model.safetensors"))
    assert "blocks.0.q.weight" + DELTA_U in stored and "blocks.0.q.weight" not in stored
    assert "blocks.1.norm1.weight" in stored
    loaded = load_checkpoint(tmp_path)
    torch.testing.assert_close(loaded.blocks[0].q.weight, model.blocks[0].q.weight, atol=1e-5, rtol=0)
    ids = torch.randint(0, 256, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, vq=False).hidden, model(ids, vq=False).hidden, atol=1e-4, rtol=0)
    # without a low-rank change nothing is factored and the version stays 1
    save_checkpoint(base(), tmp_path / "plain", base_source="test:tiny-llama", external_base=True, delta_rank=4)
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["format_version"] == 1
