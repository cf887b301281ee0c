"""The shipped (trained) default model loads with its SmolLM2 base and labels topic and sentiment."""

from __future__ import annotations

import pytest
import torch

from vqlsp.model.registry import DEFAULT_MODEL_DIR as TRAINED

pytestmark = pytest.mark.real_model


def test_trained_model_is_small_enough_to_commit():
    assert (TRAINED / "MODEL_CARD.md").is_file()
    size = sum(p.stat().st_size for p in TRAINED.iterdir())
    assert size <= 30 * 2**20


def test_trained_model_loads_and_labels_text():
    from vqlsp.model.registry import load_model, load_tokenizer

    model = load_model(TRAINED, "cpu")
    tokenizer = load_tokenizer(TRAINED)
    assert model.document_head.labels == ["business", "entertainment", "politics", "sports", "tech"]
    assert model.span_head.labels == ["negative", "positive"]
    text = "The striker scored twice as the champions won the cup final. What a wonderful, joyful match!"
    ids = tokenizer.encode(text).ids
    with torch.no_grad():
        hidden = model(torch.tensor([ids])).hidden
        topic = model.document_head.labels[int(model.document_head(hidden).argmax())]
        mood = model.span_head.labels[int(model.span_head(hidden[0], [(0, len(ids))]).argmax())]
    assert topic == "sports" and mood == "positive"
