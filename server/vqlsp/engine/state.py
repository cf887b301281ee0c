"""The cached per-document state of an incremental session: row buffers with capacity.

Every buffer is indexed by token row (second axis for per-layer buffers,
``(layers, capacity, ...)``), rows ``[0, n)`` are live, and the buffer grows
geometrically (amortised O(1) per inserted token). Edits move surviving rows to
their new indices with one copy per moved segment (``move``); nothing is
recomputed here.

Per layer l and row i (float32 unless noted):

* ``x[l]``      the residual input of layer l (``x[depth]`` is the last output)
* ``q, k, v``   post-norm, post-RoPE projections (k, v have the kv heads)
* ``o, lse``    the attention accumulators (see ``attention.py``)
* ``slack``     how far ``o`` may still move before its code could flip: the
                margin at the last search minus the distance moved since
* ``codes``     the chosen code per head (int16)
* ``hidden``    the final states (after norm_f / project_out), one per row
"""

from __future__ import annotations

import torch

from .plan import Segment


class SessionState:
    """Owns the row buffers; ``n`` live rows out of ``capacity``."""

    def __init__(self, cfg, hidden_dim: int, device: torch.device, dtype: torch.dtype, capacity: int = 64):
        self.cfg = cfg
        self.hidden_dim = hidden_dim
        self.device = device
        self.dtype = dtype
        self.n = 0
        self.capacity = 0
        self._alloc(capacity)

    def _shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        c, L = self.cfg, self.cfg.depth
        h, kv, dh, f = c.n_heads, c.n_kv_heads, c.d_head, self.dtype
        return {
            "x": ((L + 1, c.d_model), f),
            "q": ((L, h, dh), f),
            "k": ((L, kv, dh), f),
            "v": ((L, kv, dh), f),
            "o": ((L, h, dh), f),
            "lse": ((L, h), f),
            "slack": ((L, h), f),
            "codes": ((L, h), torch.int16 if c.vq.codebook_size <= 32767 else torch.int32),
            "hidden": ((self.hidden_dim,), f),
            "ids": ((), torch.long),
            "pos": ((), torch.long),
        }

    def _alloc(self, capacity: int) -> None:
        old = {name: getattr(self, name) for name in self._shapes()} if self.capacity else {}
        for name, (shape, dtype) in self._shapes().items():
            full = (shape[0], capacity, *shape[1:]) if _per_layer(name) else (capacity, *shape)
            buf = torch.zeros(full, dtype=dtype, device=self.device)
            if name in old:
                _copy_rows(buf, old[name], self.n, per_layer=_per_layer(name))
            setattr(self, name, buf)
        self.capacity = capacity

    def reserve(self, n: int) -> None:
        if n > self.capacity:
            self._alloc(max(n, 2 * self.capacity, 16))

    def move(self, segments: list[Segment]) -> None:
        """Move the rows of kept ``segments`` to their new indices (all buffers)."""
        if not segments:
            return
        for name in self._shapes():
            buf = getattr(self, name)
            layered = _per_layer(name)
            sources = [
                (buf[:, s.old_start : s.old_end] if layered else buf[s.old_start : s.old_end]).clone()
                for s in segments
            ]
            for s, src in zip(segments, sources):
                if layered:
                    buf[:, s.new_start : s.new_start + len(s)] = src
                else:
                    buf[s.new_start : s.new_start + len(s)] = src

    def bytes_per_token(self) -> int:
        """State bytes held per live token (every buffer's row, all layers)."""
        total = 0
        for name in self._shapes():
            buf = getattr(self, name)
            per_row = buf.numel() // self.capacity
            total += per_row * buf.element_size()
        return total


def _per_layer(name: str) -> bool:
    return name not in ("hidden", "ids", "pos")


def _copy_rows(dst: torch.Tensor, src: torch.Tensor, n: int, per_layer: bool) -> None:
    if per_layer:
        dst[:, :n] = src[:, :n]
    else:
        dst[:n] = src[:n]
