"""Fit every VQ codebook by k-means on real attention outputs.

Layers are fitted in order, each on the attention outputs it sees at inference
time, i.e. with all earlier layers already quantized: the captured residual
stream is pushed through one block at a time (memory: tokens x d_model floats),
so the whole fit costs one forward pass plus the k-means.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from ..model.transformer import VQTransformer, dense_attention
from ..model.vq import kmeans_codebook, relative_quantization_error


@torch.no_grad()
def fit_codebooks(
    model: VQTransformer,
    windows: torch.Tensor,
    *,
    iters: int = 25,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Fit the codebooks of ``model`` in place on windows (N, T) of token ids.

    Returns the relative quantization error ||o - q(o)||^2 / ||o||^2 per layer.
    """
    device = model.device
    positions = torch.arange(windows.shape[1], device=device)
    xs = [model.embed_rows(w.to(device), positions.expand_as(w.to(device))) for w in windows.split(batch_size)]
    pos = [model.positional(positions.expand(len(w), -1)) for w in windows.split(batch_size)]
    errors = []
    for i, block in enumerate(tqdm(model.blocks[: model.cfg.depth], desc="fitting codebooks", disable=not progress)):
        outs = [dense_attention(*block.qkv(x, p)) for x, p in zip(xs, pos)]  # (B, T, H, Dh) each
        samples = torch.cat([o.flatten(0, 1) for o in outs])  # (N*T, H, Dh)
        block.vq.codebook.data = kmeans_codebook(samples, model.cfg.vq.codebook_size, iters, seed + i)
        errors.append(relative_quantization_error(samples, block.vq.codebook))
        xs = [block.finish(x, block.quantize(o).values) for x, o in zip(xs, outs)]
    return errors
