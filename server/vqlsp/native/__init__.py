"""C kernels, compiled on this machine at first use: the engine's fused accumulator update,
the code search, and the matmul of groupwise 4-bit weights (``model/q4.py``).

``engine.attention.update_rows_`` expresses the tail's accumulator update in PyTorch ops:
two batched matmuls only as wide as the changed keys (10-70), far below BLAS's peak, and
about a dozen element-wise passes over (heads, rows, keys) temporaries. ``update_rows.c``
does all of it in one pass, per row tile and query head, reading grouped-query keys in
place. ``nearest_codes.c`` does ``model.vq.nearest_codes`` (distances to a head's codes,
top two, margin) in one pass. ``q4_matmul.c`` multiplies rows by a weight held as 4-bit
values with a scale and minimum per 32 (GGUF's Q4_1), reading 0.75 bytes a weight instead
of 4. All are built into one library with the system C compiler (``$CC``, else ``cc``)
into the user cache (``$VQLSP_CACHE`` or ``$XDG_CACHE_HOME/vqlsp``) once per source
version and CPU feature set, and loaded with ctypes; where no compiler works, or
``VQLSP_NATIVE=0``, ``available()`` is False and callers keep their PyTorch path.
``tests/engine/test_attention.py`` checks the update against a plain softmax,
``tests/engine/test_update_rows.py`` against the PyTorch path and float64 on random shapes,
``tests/model/test_vq.py`` the search against PyTorch's, ``tests/model/test_q4.py`` the
matmul against a dequantized weight.
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

SOURCES = [Path(__file__).with_name(name) for name in ("update_rows.c", "nearest_codes.c", "q4_matmul.c")]
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
        library.vqlsp_update_rows.argtypes = [i] * 5 + [p, i64, i64] * 3 + [p] + [p, i64, i64] * 2 + [p, p] + [f] * 4 + [p, p]
        library.vqlsp_update_rows.restype = i
        library.vqlsp_nearest_codes.argtypes = [i, i, i, i, p, i64, i64, p, p, p]
        library.vqlsp_nearest_codes.restype = i
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
    overflow_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``attention.update_rows_`` in one pass of ``update_rows.c`` (CPU, float32; ``available()``
    must hold). keys, values (Hkv, J, Dh) as the session holds them: query head h reads kv head
    ``h // (H // Hkv)``, no copy. Same results to float rounding, except that a cancelled row's
    ``o`` and ``lse`` are left as they were (the engine recomputes it either way)."""
    h, u, dh = q.shape
    hkv, j = keys.shape[:2]
    for t in (q, o, keys, values):
        assert t.dtype == torch.float32 and t.stride(2) == 1, "float32 with d_head contiguous"
    assert lse.dtype == torch.float32 and h % hkv == 0
    row_coord, key_coord = row_coord.contiguous(), key_coord.contiguous()
    added = added.to(torch.uint8).contiguous()
    moved = torch.empty(h, u, dtype=torch.float32)
    cancelled = torch.empty(h, u, dtype=torch.bool)
    status = _library.vqlsp_update_rows(
        h, hkv, u, j, dh,
        q.data_ptr(), q.stride(0), q.stride(1), o.data_ptr(), o.stride(0), o.stride(1),
        lse.data_ptr(), lse.stride(0), lse.stride(1), row_coord.data_ptr(),
        keys.data_ptr(), keys.stride(0), keys.stride(1), values.data_ptr(), values.stride(0), values.stride(1),
        key_coord.data_ptr(), added.data_ptr(),
        1.0 / math.sqrt(dh), cancel_ratio, max_log_weight, overflow_weight,
        moved.data_ptr(), cancelled.data_ptr(),
    )
    if status:
        raise MemoryError("vqlsp_update_rows: no memory for its scratch")
    return moved, cancelled


def nearest_codes(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.vq.nearest_codes`` in one pass of ``nearest_codes.c`` (CPU, float32; ``available()``
    must hold): x (..., H, Dh), codebook (H, K, Dh) -> codes (..., H) long, margins (..., H)."""
    *lead, h, dh = x.shape
    k = codebook.shape[1]
    rows = x.reshape(-1, h, dh)
    if rows.stride(2) != 1:
        rows = rows.contiguous()
    codebook = codebook.contiguous()
    assert rows.dtype == codebook.dtype == torch.float32, "float32 rows and codebook"
    codes = torch.empty(rows.shape[0], h, dtype=torch.long)
    margins = torch.empty(rows.shape[0], h, dtype=torch.float32)
    status = _library.vqlsp_nearest_codes(
        rows.shape[0], h, k, dh, rows.data_ptr(), rows.stride(0), rows.stride(1), codebook.data_ptr(),
        codes.data_ptr(), margins.data_ptr(),
    )
    if status:
        raise MemoryError("vqlsp_nearest_codes: no memory for its scratch")
    return codes.view(*lead, h), margins.view(*lead, h)


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


__all__ = ["available", "nearest_codes", "q4_matmul", "update_rows_"]
