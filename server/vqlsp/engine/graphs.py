"""The static layer loop replayed as captured CUDA graphs: one graph per shape.

``static_loop.run_layers`` has no host sync and its shapes depend only on
``StaticEdit.shape_key`` (buckets, undo on/off, tail size, key range, deleted keys, capacity),
so it can be captured once per key and replayed: one launch for every kernel of every
layer, the way serving engines capture one graph per padded batch size. The first edit
with a new key runs eagerly (on a side stream, which also warms cuBLAS and the caching
allocator up, as ``torch.cuda.graphs`` asks) and is then captured; capturing records the
kernels without running them, so that edit's writes happen once. Later edits with the key
copy their inputs into the graph's own input tensors and replay it; the loop's outputs
(``LoopResult``) are the graph's tensors, overwritten by the next replay of that graph, and
read by the session before it.

A graph holds the state's buffers by address: a session drops its graphs when the capacity
grows (the buffers are reallocated), and a fork gets a runner of its own. ``capture`` is
injectable so that the bookkeeping runs on the CPU in tests (a capture that re-runs the
function on the copied inputs); on CUDA it is ``cuda_capture``.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable

import torch

from . import static_loop
from .static_loop import LoopResult, StaticEdit

# graphs kept per session (each holds its own memory pool of intermediates)
MAX_GRAPHS = 16


def cuda_capture(fn: Callable[[], LoopResult]) -> Callable[[], LoopResult]:
    """Capture ``fn`` as a CUDA graph; returns a replay that gives the captured outputs."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()

    def replay() -> LoopResult:
        graph.replay()
        return out

    return replay


class GraphedLayers:
    """Runs ``static_loop.run_layers`` through one captured graph per shape key."""

    def __init__(self, capture: Callable = cuda_capture, run: Callable = static_loop.run_layers):
        self.capture, self.run = capture, run
        self.graphs: OrderedDict[tuple, tuple[StaticEdit, Callable[[], LoopResult]]] = OrderedDict()
        self.captures = 0  # graphs captured so far (for tests and reports)
        self._capacity = -1

    def __call__(self, model, state, policy, edit: StaticEdit) -> LoopResult:
        if state.capacity != self._capacity:  # reallocated buffers: every graph points at the old ones
            self.graphs.clear()
            self._capacity = state.capacity
        key = edit.shape_key(state)
        if key in self.graphs:
            inputs, replay = self.graphs[key]
            self.graphs.move_to_end(key)
            _copy_into(inputs, edit)
            return replay()
        result = self._eager(model, state, policy, edit)
        inputs = _clone(edit)
        self.graphs[key] = inputs, self.capture(lambda: self.run(model, state, policy, inputs))
        self.captures += 1
        if len(self.graphs) > MAX_GRAPHS:
            self.graphs.popitem(last=False)
        return result

    def _eager(self, model, state, policy, edit: StaticEdit) -> LoopResult:
        if state.device.type != "cuda":
            return self.run(model, state, policy, edit)
        side, main = torch.cuda.Stream(state.device), torch.cuda.current_stream(state.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            result = self.run(model, state, policy, edit)
        main.wait_stream(side)
        return result


def _tensor_fields(edit: StaticEdit) -> list[str]:
    return [f.name for f in dataclasses.fields(edit) if isinstance(getattr(edit, f.name), torch.Tensor)]


def _clone(edit: StaticEdit) -> StaticEdit:
    return dataclasses.replace(edit, **{name: getattr(edit, name).clone() for name in _tensor_fields(edit)})


def _copy_into(inputs: StaticEdit, edit: StaticEdit) -> None:
    for name in _tensor_fields(edit):
        getattr(inputs, name).copy_(getattr(edit, name))


__all__ = ["GraphedLayers", "cuda_capture"]
