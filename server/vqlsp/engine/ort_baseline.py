"""Dense re-runs on ONNX Runtime: the baseline a user would pick instead of the engine.

``OrtDenseStrategy`` has the session's interface (``apply``, ``outputs``, the same
position policies and operation count as ``DenseStrategy``) but runs the graph
``vqlsp export --onnx`` wrote (``model/onnx_export.py``), fp32 or int8, on the CPU
execution provider. The torch model it is given supplies only the heads and the
configuration; every edit re-runs the whole graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..model.onnx_export import ort_session, run_graph
from .baselines import _Strategy
from .edits import TokenEdit
from .ops import dense_ops
from .positions import DEFAULT_MAX_DRIFT, PositionPolicy
from .results import UpdateStats


class OrtDenseStrategy(_Strategy):
    """Re-run the exported graph on every edit."""

    def __init__(self, model, token_ids: Sequence[int] = (), position_policy: str | PositionPolicy = "stable",
                 *, graph: str | Path, max_drift: int = DEFAULT_MAX_DRIFT, threads: int = 1):
        super().__init__(model, position_policy, max_drift)
        self.graph = Path(graph)
        self.session = ort_session(graph, threads)
        if len(token_ids):
            self.apply([TokenEdit(0, 0, tuple(token_ids))])

    def _update(self, ids: torch.Tensor, pos: torch.Tensor, stats: UpdateStats) -> None:
        n, depth = len(ids), self.cfg.depth
        if n:
            (hidden,) = run_graph(self.session, ids[None], pos[None])
            self.hidden = torch.from_numpy(hidden[0]).to(self.device)
        else:
            self.hidden = self.hidden[:0]
        stats.ops = dense_ops(self.cost, n, depth)
        stats.rows_changed = [n] * depth
