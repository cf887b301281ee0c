"""A fused C kernel for the tail's accumulator update, compiled on this machine at first use.

``attention.update_rows_`` expresses the update in PyTorch ops: about a dozen
element-wise passes over (heads, rows, keys) and (heads, rows, d_head) temporaries
around two batched matmuls. ``update_rows.c`` fuses the element-wise parts into one
pass on each side of the second matmul; the matmuls stay with BLAS. It is built
with the system C compiler (``$CC``, else ``cc``) into the user cache
(``$VQLSP_CACHE`` or ``$XDG_CACHE_HOME/vqlsp``) once per source version and CPU
feature set, and loaded with ctypes; where no compiler works, or ``VQLSP_NATIVE=0``,
``available()`` is False and the engine keeps the PyTorch path. ``tests/engine/test_attention.py``
checks both against a plain softmax.
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

from ...model.base_weights import cache_dir, write_atomically

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("update_rows.c")
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
        obj = tmp.with_name(tmp.name + ".o")
        # the compiler's own temporary files go next to the target, in the cache: the server
        # writes nowhere else (tests/lsp/test_writes.py)
        env = {**os.environ, "TMPDIR": str(tmp.parent)}
        try:
            for args in ([*COMPILE, str(SOURCE), "-o", str(obj)], [*LINK, str(obj), "-o", str(tmp), "-lm"]):
                subprocess.run([*compiler, *args], check=True, capture_output=True, timeout=120, env=env)
        finally:
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
        key = SOURCE.read_bytes() + " ".join(COMPILE + LINK).encode() + _cpu_features()
        digest = hashlib.sha256(key).hexdigest()[:16]
        try:
            target = cache_dir() / "native" / f"update_rows-{digest}-{platform.machine()}.so"
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


__all__ = ["available", "update_rows_"]
