"""Shared fixtures: tiny random models (OPT and Llama forms) and the real default base."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def default_base():
    """The real SmolLM2-135M base (VQ codebooks random); converted and cached on first use."""
    from vqlsp.model.base_weights import load_default_base

    return load_default_base()


@pytest.fixture(scope="session")
def default_tokenizer():
    from tokenizers import Tokenizer

    from vqlsp.model.base_weights import default_tokenizer_path

    return Tokenizer.from_file(str(default_tokenizer_path()))


@pytest.fixture(scope="session")
def default_model():
    """The shipped default checkpoint (base + fitted codebooks + document head)."""
    from vqlsp.model.registry import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def default_graphs(tmp_path_factory):
    """The default model's exported graphs, fp32 and int8 (``vqlsp export --onnx``), once per session."""
    from vqlsp.model.onnx_export import graph_files
    from vqlsp.model.registry import load_model

    fp32 = load_model(None, "cpu", weights="fp32")  # the graph holds float32 weights (see registry.load_model)
    return graph_files(tmp_path_factory.mktemp("default-onnx"), fp32)
