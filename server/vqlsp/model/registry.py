"""Where models come from: the shipped default, or a checkpoint directory."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from .. import native
from .base_weights import default_tokenizer_path
from .checkpoint import (
    DEFAULT_BASE,
    DEFAULT_MODEL_DIR,
    CheckpointError,
    base_directory,
    load_checkpoint,
    read_config,
    read_deltas,
)
from .device import resolve_device
from .packed import pack_linears
from .q4 import fuse_projections, quantize_linears
from .transformer import VQTransformer

# how the blocks' weights are held: float32 (oneDNN-packed on the CPU), or groupwise 4-bit
# (the default base's own Q4_1 values, fine-tuning deltas as unmerged factors; model/q4.py);
# "auto": q4 where it is exact and fast (a checkpoint on the Q4_1 default base, on a CPU with
# the native kernel), else fp32
WEIGHT_FORMATS = ("auto", "fp32", "q4")


def model_dir(path: str | Path | None) -> Path:
    """The checkpoint directory to use: ``path``, or the default shipped inside the package."""
    return Path(path) if path else DEFAULT_MODEL_DIR


def load_model(path: str | Path | None = None, device: str = "auto", weights: str = "auto") -> VQTransformer:
    """A checkpoint (default: the shipped model) ready for inference on ``device``, its blocks'
    weights held as ``weights`` (one of ``WEIGHT_FORMATS``; ``q4`` raises ``q4.NotQ4`` for a
    model whose weights are not groupwise 4-bit)."""
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"unknown weight format {weights!r}; choose one of {', '.join(WEIGHT_FORMATS)}")
    directory, device = model_dir(path), resolve_device(device)
    if weights == "auto":
        weights = "q4" if _on_q4_base(directory) and device.type == "cpu" and native.available() else "fp32"
    model = load_checkpoint(directory, device, merge_deltas=weights == "fp32")
    if weights == "q4":
        return quantize_blocks(model, read_deltas(directory))
    if model.device.type == "cpu":
        for block in model.blocks[: model.cfg.depth]:
            pack_linears(block)  # faster few-row matmuls for the incremental engine
    return model


def weight_format(model: VQTransformer) -> str:
    """How a loaded model's blocks hold their weights: ``q4`` or ``fp32``."""
    from .q4 import Q4Linear

    return "q4" if any(isinstance(m, Q4Linear) for m in model.blocks[0].modules()) else "fp32"


def _on_q4_base(directory: Path) -> bool:
    """Whether a checkpoint's blocks are its external Q4_1 default base plus low-rank deltas."""
    config = read_config(directory)
    base = config.get("base") or {}
    acm = config.get("acm") or (config.get("model") or {}).get("acm")  # learners are trained: not 4-bit
    return base.get("source") == DEFAULT_BASE and base.get("weights") == "external" and not acm


def quantize_blocks(model: VQTransformer, deltas=None) -> VQTransformer:
    """Hold the used blocks' linears in 4 bits, with ``deltas`` (state-dict name -> (u, v)) unmerged.
    Every model tensor with a delta must still be its base weight."""
    deltas = dict(deltas or {})
    for i, block in enumerate(model.blocks):
        if i < model.cfg.depth:
            quantize_linears(block, deltas, prefix=f"blocks.{i}.")
            fuse_projections(block)  # q, k, v in one kernel call; gate and up in another
        else:  # unused blocks: merge so that nothing is lost
            _merge_into(block, deltas, f"blocks.{i}.")
    return model


def _merge_into(block, deltas, prefix: str) -> None:
    import torch

    with torch.no_grad():
        for name, param in block.named_parameters():
            if prefix + name in deltas:
                u, v = deltas[prefix + name]
                param += (u.double() @ v.double()).to(param.dtype)


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
