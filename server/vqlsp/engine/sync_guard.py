"""A guard that fails on host syncs and data-dependent shapes, on any device (CPU included).

On CUDA a host sync is an operation whose result the host must wait for (a value read
back, or an output whose size depends on the data): ``.item()``, ``int(t)``, ``bool(t)``,
``.tolist()``, ``nonzero``, ``unique``, ``masked_select``, indexing by a boolean mask,
``repeat_interleave`` by a tensor. ``torch.cuda.set_sync_debug_mode("error")`` catches them
only on a GPU. ``no_host_sync`` catches the same operations on the CPU, from PyTorch's
dispatcher (``TorchDispatchMode``) and, for ``tolist`` / ``numpy``, which read memory
without dispatching, from the function layer (``TorchFunctionMode``): the static layer loop
(``static_loop.py``) is tested under it. It can also log the shapes entering matmuls and
attention, to check that they come from a bounded set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# operations whose output size depends on the data, or that read a value back
_SYNCING = {
    aten._local_scalar_dense.default,  # .item(), int(t), float(t), bool(t), `if t:`
    aten.nonzero.default, aten.nonzero.out, aten.nonzero_numpy.default,
    aten.masked_select.default, aten.masked_select.out,
    aten.repeat_interleave.Tensor,
    aten._unique.default, aten._unique2.default, aten.unique_dim.default,
    aten.unique_consecutive.default, aten.unique_dim_consecutive.default,
}
_INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}
_READ_BACK = {torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.item}
# the per-layer products whose shapes ``ShapeLog`` records
_PRODUCTS = {
    aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default, aten.matmul.default,
    aten.linear.default, aten.einsum.default,  # left whole by CPU inference mode
}
_FLASH = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
if _FLASH is not None:
    _PRODUCTS.add(_FLASH.default)


class HostSync(RuntimeError):
    """An operation that would make the host wait for the device, or give a data-dependent shape."""


class ShapeLog:
    """The distinct (operation, input shapes) of the matmuls and attention run under a guard."""

    def __init__(self) -> None:
        self.signatures: set[tuple] = set()

    def add(self, func, args) -> None:
        flat = [t for a in args for t in (a if isinstance(a, (list, tuple)) else [a])]
        shapes = tuple(tuple(t.shape) for t in flat if isinstance(t, torch.Tensor))
        self.signatures.add((str(func), shapes))


class _Dispatch(TorchDispatchMode):
    def __init__(self, shapes: ShapeLog | None, strict: bool = True):
        super().__init__()
        self.shapes, self.strict = shapes, strict

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.strict and func in _SYNCING:
            raise HostSync(f"{func} reads a value back or has a data-dependent shape")
        if self.strict and func in _INDEXING and _has_mask_index(args[1]):
            raise HostSync(f"{func} with a boolean mask has a data-dependent shape")
        if self.shapes is not None and func in _PRODUCTS:
            self.shapes.add(func, args)
        return func(*args, **(kwargs or {}))


class _Function(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _READ_BACK:
            raise HostSync(f"{func.__name__} reads values back to the host")
        return func(*args, **(kwargs or {}))


def _has_mask_index(indices) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ())


@contextmanager
def no_host_sync(shapes: ShapeLog | None = None) -> Iterator[None]:
    """Raise ``HostSync`` on any syncing operation inside the block; log product shapes into
    ``shapes`` when given."""
    with _Function(), _Dispatch(shapes):
        yield


@contextmanager
def product_shapes(shapes: ShapeLog) -> Iterator[None]:
    """Log product shapes into ``shapes`` without the guard (to compare with a loop that syncs)."""
    with _Dispatch(shapes, strict=False):
        yield


__all__ = ["HostSync", "ShapeLog", "no_host_sync", "product_shapes"]
