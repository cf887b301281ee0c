"""The ONNX Runtime rows of ``vqlsp bench engine``: what a user would run instead of the engine.

Two more dense re-runs beside torch's, on the same trace in the same process: the
exported graph (``vqlsp export --onnx``) in fp32 and with int8 dynamic quantization,
on ``--ort-threads`` intra-op threads (default: as many as torch uses). Besides their
ms per edit (the strategy table), the run reports the incremental engine's per-edit
ratio to each and to the *fastest dense alternative* (the dense re-run, torch or ORT,
with the lowest median ms), and how far each graph's document probabilities are from
torch's dense ones over the trace (max difference, share of edits with the same label).
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from pathlib import Path

ORT_ROWS = ("ort_fp32", "ort_int8")
DENSE_ROWS = ("dense", *ORT_ROWS)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime dense rows (fp32, int8)")
    p.add_argument("--onnx", metavar="DIR",
                   help="the graphs for the ONNX Runtime rows: DIR/model.onnx (vqlsp export --onnx DIR) and "
                        "DIR/model.int8.onnx (quantized there if missing); default: exported to a temporary directory")
    p.add_argument("--ort-threads", type=int, default=0,
                   help="ONNX Runtime intra-op threads (default: as many as torch uses)")


def strategies(model, args: argparse.Namespace, device, scratch: Path) -> dict:
    """{row name: strategy class taking the bench's arguments}; none with ``--no-ort`` or off the CPU."""
    import torch

    from ..engine.ort_baseline import OrtDenseStrategy
    from ..model.onnx_export import graph_files
    from ..model.registry import load_model, weight_format

    if args.no_ort:
        return {}
    if device.type != "cpu":
        print(f"ONNX Runtime rows: CPU only, skipped on {device}")
        return {}
    if weight_format(model) != "fp32":  # graphs hold float32 weights (a 4-bit kernel is native code)
        model = load_model(args.model, "cpu", weights="fp32")
    graphs = graph_files(args.onnx or scratch, model)
    threads = args.ort_threads or torch.get_num_threads()
    return {f"ort_{kind}": partial(OrtDenseStrategy, graph=path, threads=threads) for kind, path in graphs.items()}


class Agreement:
    """Per edit, each ORT row's document probabilities against a reference row's (torch dense)."""

    def __init__(self, reference: str):
        self.reference = reference
        self.diffs: dict[str, list[float]] = {}
        self.same_label: dict[str, list[bool]] = {}

    def record(self, strategies: dict) -> None:
        ref = strategies[self.reference].outputs().probabilities
        if ref is None:
            return
        for name in ORT_ROWS:
            if name in strategies:
                p = strategies[name].outputs().probabilities
                self.diffs.setdefault(name, []).append((p - ref).abs().max().item())
                self.same_label.setdefault(name, []).append(bool(p.argmax() == ref.argmax()))

    def summary(self) -> dict:
        """{"reference": row, ORT row: {max_abs_prob_diff, label_agreement}} over every edit (warm-up too)."""
        rows = {
            name: {"max_abs_prob_diff": max(diffs), "label_agreement": statistics.fmean(self.same_label[name])}
            for name, diffs in self.diffs.items()
        }
        return {"reference": self.reference, **rows}


def ratios(records: dict, strategy_table: dict) -> tuple[dict[str, float], str | None]:
    """The engine's per-edit ms ratio (median) to each ORT row and to the fastest dense re-run
    (``ms_vs_fastest_dense_median``), and which row that is."""
    inc = records["incremental"]

    def ratio(name: str) -> float:
        return statistics.median(r.ms / i.ms for r, i in zip(records[name], inc))

    out = {f"ms_vs_{name}_median": ratio(name) for name in ORT_ROWS if name in records}
    dense = [name for name in DENSE_ROWS if name in records]
    if not out or not dense:
        return out, None
    fastest = min(dense, key=lambda name: strategy_table[name]["ms_median"])
    out["ms_vs_fastest_dense_median"] = ratio(fastest)
    return out, fastest


def describe(rows: dict) -> dict:
    """The graphs and thread count the ORT rows ran with (for the JSON)."""
    first = next(iter(rows.values()))
    return {"threads": first.keywords["threads"], "graphs": {name: str(row.keywords["graph"]) for name, row in rows.items()}}
