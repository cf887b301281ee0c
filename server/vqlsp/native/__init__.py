"""C kernels, compiled on this machine at first use: the engine's fused accumulator update
and the matmul of groupwise 4-bit weights (``model/q4.py``).

``engine.attention.update_rows_`` expresses the update in PyTorch ops: about a dozen
element-wise passes over (heads, rows, keys) and (heads, rows, d_head) temporaries
around two batched matmuls. ``update_rows.c`` fuses the element-wise parts into one
pass on each side of the second matmul; the matmuls stay with BLAS. ``q4_matmul.c``
multiplies rows by a weight held as 4-bit values with a scale and minimum per 32 (GGUF's
Q4_1), reading 0.75 bytes a weight instead of 4. Both are built into one library
with the system C compiler (``$CC``, else ``cc``) into the user cache
(``$VQLSP_CACHE`` or ``$XDG_CACHE_HOME/vqlsp``) once per source version and CPU
feature set, and loaded with ctypes; where no compiler works, or ``VQLSP_NATIVE=0``,
``available()`` is False and callers keep their PyTorch path. ``tests/engine/test_attention.py``
checks the update against a plain softmax, ``tests/model/test_q4.py`` the matmul against
a dequantized weight.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import platform
import shlex
import subprocess
import threading
from pathlib import Path

import torch

from ..model.base_weights import cache_dir, write_atomically

log = logging.getLogger(__name__)

SOURCES = [Path(__file__).with_name(name) for name in ("update_rows.c", "q4_matmul.c")]
# -ffast-math lets exp() vectorize (glibc's libmvec) and sums reassociate; the kernel
# keeps no NaN or inf. It is compiled, then linked without it: linking with -ffast-math
# would set flush-to-zero for the whole process on load.
COMPILE = ["-O3", "-march=native", "-ffast-math", "-fPIC", "-std=c11", "-c"]
LINK = ["-shared"]

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_failed = False


def _build(target: Path) -> None:
    compiler = shlex.split(os.environ.get("CC") or "cc")

    def compile_and_link(tmp: Path) -> None:
        objects = [tmp.with_name(f"{tmp.name}.{i}.o") for i in range(len(SOURCES))]
        # the compiler's own temporary files go next to the target, in the cache: the server
        # writes nowhere else (tests/lsp/test_writes.py)
        env = {**os.environ, "TMPDIR": str(tmp.parent)}
        try:
            for source, obj in zip(SOURCES, objects):
                subprocess.run([*compiler, *COMPILE, str(source), "-o", str(obj)], check=True, capture_output=True,
                               timeout=120, env=env)
            link = [*LINK, *map(str, objects), "-o", str(tmp), "-lm"]
            subprocess.run([*compiler, *link], check=True, capture_output=True, timeout=120, env=env)
        finally:
            for obj in objects:
                obj.unlink(missing_ok=True)

    write_atomically(target, compile_and_link)


def _cpu_features() -> bytes:
    """What ``-march=native`` compiled for: a library built on one CPU must not be loaded on
    another that lacks its instructions (a shared cache directory, a moved home)."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            return next((line for line in f if line.startswith((b"flags", b"Features"))), b"")
    except OSError:
        return (platform.processor() or platform.machine()).encode()


def _load() -> ctypes.CDLL | None:
    global _library, _failed
    with _lock:
        if _library is not None or _failed:
            return _library
        if os.environ.get("VQLSP_NATIVE", "1") == "0":
            _failed = True
            return None
        key = b"".join(source.read_bytes() for source in SOURCES) + " ".join(COMPILE + LINK).encode() + _cpu_features()
        digest = hashlib.sha256(key).hexdigest()[:16]
        try:
            target = cache_dir() / "native" / f"vqlsp-{digest}-{platform.machine()}.so"
            if not target.is_file():
                _build(target)
            library = ctypes.CDLL(str(target))
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            log.warning("vqlsp: no native engine kernel (%s %s); using the PyTorch path", exc,
                        detail.decode(errors="replace")[-400:])
            _failed = True
            return None
        i, i64, f, p = ctypes.c_int, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
        library.vqlsp_weights.argtypes = [i, i, i, p, p, i64, i64, p, p, p, f, f, p, p]
        library.vqlsp_weights.restype = None
        library.vqlsp_apply.argtypes = [i, i, i, p, p, i64, i64, p, i64, i64, p, p, p]
        library.vqlsp_apply.restype = None
        library.vqlsp_q4_matmul.argtypes = [i, i, i, p, i64, p, p, p, p, i64]
        library.vqlsp_q4_matmul.restype = None
        _library = library
        return library


def available() -> bool:
    """Whether the kernel is built and loaded (builds it on the first call)."""
    return _load() is not None


def update_rows_(
    q: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    row_coord: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    key_coord: torch.Tensor,
    added: torch.Tensor,
    cancel_ratio: float,
    max_log_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``attention.update_rows_`` with its element-wise passes fused (CPU, float32;
    ``available()`` must hold; keys, values (H, J, Dh), one per query head). Same results,
    except that a cancelled row's ``o`` and ``lse`` are left as they were (the engine
    recomputes it either way)."""
    h, u, dh = q.shape
    for t in (q, o):
        assert t.dtype == torch.float32 and t.stride(2) == 1, "rows must be float32 with d_head contiguous"
    scores = torch.bmm(q, keys.mul(1.0 / math.sqrt(dh)).transpose(1, 2))  # (H, U, J), contiguous
    row_coord, key_coord = row_coord.contiguous(), key_coord.contiguous()
    sign = added.to(torch.float32).mul_(2).sub_(1)
    total = torch.empty(h, u, dtype=torch.float32)
    flag = torch.empty(h, u, dtype=torch.uint8)
    _library.vqlsp_weights(
        h, u, keys.shape[1], scores.data_ptr(), lse.data_ptr(), lse.stride(0), lse.stride(1),
        row_coord.data_ptr(), key_coord.data_ptr(), sign.data_ptr(), cancel_ratio, max_log_weight,
        total.data_ptr(), flag.data_ptr(),
    )
    delta = torch.bmm(scores, values)  # (H, U, Dh): sum_j c_j v_j
    moved = torch.empty(h, u, dtype=torch.float32)
    _library.vqlsp_apply(
        h, u, dh, delta.data_ptr(), o.data_ptr(), o.stride(0), o.stride(1),
        lse.data_ptr(), lse.stride(0), lse.stride(1), total.data_ptr(), flag.data_ptr(), moved.data_ptr(),
    )
    return moved, flag == 2


def q4_matmul(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor, n: int) -> torch.Tensor:
    """x (M, K) float32 times a 4-bit weight (n, K) in the layout of ``q4_matmul.c`` -> (M, n).
    ``available()`` must hold; x's columns must be contiguous."""
    m, k = x.shape
    assert x.dtype == torch.float32 and x.stride(1) == 1 and q.is_contiguous(), "x float32, columns contiguous"
    y = x.new_empty(m, n)
    _library.vqlsp_q4_matmul(
        m, n, k, x.data_ptr(), x.stride(0), q.data_ptr(), scale.data_ptr(), minimum.data_ptr(), y.data_ptr(), n
    )
    return y


__all__ = ["available", "q4_matmul", "update_rows_"]
