"""Extra heads: one head in one ``.safetensors`` file, served beside a model's own heads.

``vqlsp train-head`` fits a head on a model's frozen features and writes it as
``head.safetensors`` (the ``heads`` server option lists such files, or the
directories that hold them). The file holds the head's ``weight`` (C, D) and
``bias`` (C,), and its description as safetensors metadata (string values)::

    format "vqlsp-head", format_version "1", kind "document" | "span", name,
    labels (JSON list), pooling (document) | unit (span), info (JSON)

A head is only meaningful on the features it was fitted on, so the file also
holds ``probe``: the model's mean final state over ``PROBE_IDS``. A model that
serves the head must reproduce it (``check_fits``); a head trained on another
model (another checkpoint, other codebooks, another exit layer) is refused with
a message that says so, instead of producing confident nonsense.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import FORMAT_VERSION as CHECKPOINT_VERSION
from .checkpoint import WEIGHTS, checkpoint_source, read_config
from .config import ModelConfig
from .heads import KINDS, DocumentHead, SpanHead
from .registry import model_dir
from .transformer import VQTransformer

FORMAT = "vqlsp-head"
FORMAT_VERSION = "1"
HEAD_FILE = "head.safetensors"
# Token ids the probe reads: small ids (every vocabulary has them), not a sentence.
PROBE_IDS = tuple(range(3, 35))
PROBE_TOLERANCE = 1e-2  # relative L2 distance allowed (devices and thread counts round differently)

Head = DocumentHead | SpanHead


class HeadFileError(ValueError):
    """A head file is missing, malformed, or does not fit the model that should serve it."""


@torch.no_grad()
def model_probe(model: VQTransformer) -> torch.Tensor:
    """(D,) float32: the model's mean final state over ``PROBE_IDS`` (what its features look like)."""
    ids = torch.tensor([[i % model.cfg.vocab_size for i in PROBE_IDS]], device=model.device)
    return model(ids).hidden[0].float().mean(0).cpu()


def head_path(path: str | Path) -> Path:
    """A head file, or the directory ``vqlsp train-head`` wrote it into."""
    path = Path(path).expanduser()
    return path / HEAD_FILE if path.is_dir() else path


def save_head(path: str | Path, head: Head, probe: torch.Tensor, info: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": head.kind, "name": head.name,
        "labels": json.dumps(head.labels), "info": json.dumps(info or {}),
    }
    meta["pooling" if head.kind == "document" else "unit"] = head.pooling if head.kind == "document" else head.unit
    tensors = {
        "weight": head.linear.weight.detach().float().cpu().contiguous(),
        "bias": head.linear.bias.detach().float().cpu().contiguous(),
        "probe": probe.detach().float().cpu().contiguous(),
    }
    save_file(tensors, str(path), metadata=meta)
    return path


def load_head(path: str | Path) -> tuple[Head, torch.Tensor]:
    """The head in a head file (on the CPU) and the probe it was fitted with."""
    path = head_path(path)
    if not path.is_file():
        raise HeadFileError(f"head file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except (SafetensorError, OSError) as exc:
        raise HeadFileError(f"{path} is not a readable safetensors file: {exc}") from None
    if meta.get("format") != FORMAT:
        raise HeadFileError(f"{path} is not a vqlsp head file (format != {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise HeadFileError(f"{path}: unsupported format_version {meta.get('format_version')!r}")
    try:
        kind, name, labels = meta["kind"], meta["name"], json.loads(meta["labels"])
        weight, bias, probe = tensors["weight"], tensors["bias"], tensors["probe"]
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        if weight.dim() != 2 or weight.shape[0] != len(labels) or bias.shape != (len(labels),):
            raise ValueError(f"weight {tuple(weight.shape)} / bias {tuple(bias.shape)} do not fit {len(labels)} labels")
        if probe.shape != (weight.shape[1],):
            raise ValueError(f"probe {tuple(probe.shape)} does not fit the weight {tuple(weight.shape)}")
        dim = weight.shape[1]
        head: Head = (
            DocumentHead(dim, labels, meta.get("pooling", "mean"), name) if kind == "document"
            else SpanHead(dim, labels, meta.get("unit", "sentence"), name)  # type: ignore[arg-type]
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise HeadFileError(f"{path}: bad head file: {exc}") from None
    with torch.no_grad():
        head.linear.weight.copy_(weight)
        head.linear.bias.copy_(bias)
    return head.eval(), probe


def check_fits(head: Head, fitted: torch.Tensor, served: torch.Tensor, where: str) -> None:
    """Refuse a head fitted on another model's features (``fitted``: the probe in its file,
    ``served``: the serving model's)."""
    if fitted.shape != served.shape:
        raise HeadFileError(
            f"{where}: head {head.name!r} reads {fitted.shape[0]}-dimensional features; this model has "
            f"{served.shape[0]}"
        )
    distance = float((fitted - served).norm() / fitted.norm().clamp_min(1e-12))
    if distance > PROBE_TOLERANCE:
        raise HeadFileError(
            f"{where}: head {head.name!r} was trained on another model's features (probe differs by "
            f"{distance:.1%}); serve it with the model it was trained on, or train it again on this one"
        )


def load_extra_heads(model: VQTransformer, paths: Sequence[str | Path], taken: set[str] = frozenset()) -> list[Head]:
    """The heads in ``paths``, checked against ``model`` and moved to its device.

    Names must be unique among the model's own heads, ``taken`` and each other
    (clients tell the heads apart by name)."""
    taken = set(taken) | {h.name for h in (model.document_head, model.span_head) if h is not None}
    probe = model_probe(model) if paths else None
    heads = []
    for path in paths:
        head, fitted = load_head(path)
        check_fits(head, fitted, probe, str(head_path(path)))
        if head.name in taken:
            raise HeadFileError(f"{head_path(path)}: a head named {head.name!r} is served already; rename one")
        taken.add(head.name)
        heads.append(head.to(device=model.device, dtype=model.embed.weight.dtype))
    return heads


def save_head_checkpoint(
    directory: str | Path, base: str | Path | None, head: Head, info: dict[str, Any] | None = None
) -> Path:
    """Write a checkpoint that is the checkpoint ``base`` (None: the shipped default) with
    ``head`` in place of its own head of that kind, storing only the heads (its weights are
    the base's: ``weights: "external"``). Reads the base's files; never loads the model."""
    source_dir = model_dir(base)
    config = read_config(source_dir)
    heads = dict(config.get("heads") or {})
    heads[head.kind] = head.config()
    prefixes = tuple(f"{kind}_head." for kind in heads if kind != head.kind)
    with safe_open(str(source_dir / WEIGHTS), framework="pt") as f:
        kept = {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefixes)}  # noqa: SIM118
    own = {f"{head.kind}_head.{k}": v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({**kept, **own}, str(directory / WEIGHTS), metadata={"format": "pt"})
    written = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
        "model": ModelConfig.from_dict(config["model"]).to_dict(), "heads": heads,
        "base": {"source": checkpoint_source(base), "weights": "external"}, "info": info or {},
    }
    (directory / "config.json").write_text(json.dumps(written, indent=2) + "\n")
    return directory
