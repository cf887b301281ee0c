"""Where models come from: the shipped default, or a checkpoint directory."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from .base_weights import default_tokenizer_path
from .checkpoint import (
    DEFAULT_BASE,
    DEFAULT_MODEL_DIR,
    CheckpointError,
    base_directory,
    load_checkpoint,
    read_config,
)
from .device import resolve_device
from .packed import pack_linears
from .transformer import VQTransformer


def model_dir(path: str | Path | None) -> Path:
    """The checkpoint directory to use: ``path``, or the default shipped inside the package."""
    return Path(path) if path else DEFAULT_MODEL_DIR


def load_model(path: str | Path | None = None, device: str = "auto") -> VQTransformer:
    """A checkpoint (default: the shipped model) ready for inference on ``device``."""
    model = load_checkpoint(model_dir(path), resolve_device(device))
    if model.device.type == "cpu":
        for block in model.blocks[: model.cfg.depth]:
            pack_linears(block)  # faster few-row matmuls for the incremental engine
    return model


def load_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """A checkpoint's tokenizer: its own ``tokenizer.json``, else its base's."""
    directory = model_dir(path)
    own = directory / "tokenizer.json"
    if own.is_file():
        return Tokenizer.from_file(str(own))
    source = (read_config(directory).get("base") or {}).get("source")
    if source == DEFAULT_BASE:
        return Tokenizer.from_file(str(default_tokenizer_path()))
    if (base := base_directory(source)) is not None:
        return load_tokenizer(base)
    raise CheckpointError(f"{directory} has no tokenizer.json and its base {source!r} names none")
