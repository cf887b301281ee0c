"""Fixtures of the language-server tests (the harness itself is in ``harness.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import build_tiny_checkpoint, lsp_client  # noqa: F401  (the pytest-lsp client fixture)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-vqlsp"))
