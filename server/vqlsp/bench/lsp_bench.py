"""``vqlsp bench lsp``: keystroke-to-publish latency, measured at a client over real stdio.

A client starts ``vqlsp serve`` as a subprocess, opens a prose document of
``--tokens`` tokens and types a sentence into its middle, one character per
``didChange`` (with a backspace now and then), waiting for each keystroke's
``textDocument/publishDiagnostics`` (stamped with that version) before the next
one: latency = publish arrival - change sent, as an editor would see it. With
``--debounce-ms 0`` (the default here) that is the cost of the update itself;
an editor's debounce adds to it.

For comparison, the same keystrokes (the first ``--dense-edits`` of them) are
replayed against a second server that re-runs the whole model per update
(``serve --dense``): same process layout, same client, only the analyzer
differs. Per update the server also reports its own time (``ms``: the whole
update on the worker; ``modelMs``: the engine's ``apply``), so the JSON says
where the time goes: model, the rest of the update (heads, segmentation,
edit bookkeeping), and transport + scheduling (latency - ms).

JSON (``--json PATH``)::

    {"tokens": N, "edits": E, "latency_ms": {"p50", "p95", "max"}, "dense_ms_median": x,
     "incremental": {...per-stage medians...}, "dense": {...}, "model": ..., "device": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

_TYPED = "Meanwhile the committee published a longer report on the results, with 42 new tables. "


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=int, default=1024, help="document length in tokens (default 1024)")
    parser.add_argument("--edits", type=int, default=100, help="keystrokes to time (default 100)")
    parser.add_argument("--dense-edits", type=int, default=10, help="keystrokes replayed densely (default 10)")
    parser.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    parser.add_argument("--debounce-ms", type=float, default=0.0, help="server debounce (default 0)")
    parser.add_argument("--position-policy", default="stable", choices=["stable", "exact"])
    parser.add_argument("--threads", type=int, default=0, help="the server's torch threads (default: the server's, 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", help="write the results here")


def make_document(tokens: int, model: str | None, seed: int) -> tuple[str, int]:
    """Prose of about ``tokens`` tokens (cut at a token boundary); returns (text, exact count)."""
    from vqlsp.model.registry import load_tokenizer
    from vqlsp.text.tokenizer import TextTokenizer

    from .text_bench import make_prose

    tokenizer = TextTokenizer(load_tokenizer(model))
    rng = random.Random(seed)
    text = make_prose(tokens * 8, rng)
    run = tokenizer.encode(text)
    while len(run.ids) < tokens:
        text += make_prose(tokens * 4, rng)
        run = tokenizer.encode(text)
    text = text[: run.starts[tokens]] if len(run.ids) > tokens else text
    return text, len(tokenizer.encode_ids(text))


def keystrokes(text: str, count: int, seed: int) -> list[tuple[int, int, str]]:
    """``count`` typing changes in the middle of ``text`` (each relative to the text before it)."""
    rng = random.Random(seed)
    at = text.find(". ", len(text) // 2) + 2 if ". " in text[len(text) // 2 :] else len(text) // 2
    out, typed = [], 0
    while len(out) < count:
        if typed and rng.random() < 0.08:  # a backspace
            out.append((at + typed - 1, at + typed, ""))
            typed -= 1
            continue
        ch = _TYPED[len(out) % len(_TYPED)]
        out.append((at + typed, at + typed, ch))
        typed += 1
    return out


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p95": p95, "max": ordered[-1], "mean": statistics.fmean(ordered)}


async def replay(text: str, edits: list[tuple[int, int, str]], options: dict, dense: bool, threads: int) -> dict:
    from vqlsp.lsp.client import StdioSession

    session = StdioSession((["--dense"] if dense else []) + (["--threads", str(threads)] if threads else []))
    t0 = time.perf_counter()
    await session.start(options)
    rows: list[dict] = []
    try:
        sent = session.open(text)
        arrived, first = await session.classification(1)
        startup_s, first_ms = arrived - t0, first["ms"]
        for start, end, new in edits:
            sent = session.change(start, end, new)
            published = await session.publish(session.version)
            classified, got = await session.classification(session.version)
            rows.append({
                "latency_ms": (published - sent) * 1e3, "classification_ms": (classified - sent) * 1e3,
                "server_ms": got["ms"], "model_ms": got["modelMs"], "reused_fraction": got["reused_fraction"],
                "changed_tokens": got["changedTokens"], "tokens": got["tokens"],
            })
        stats = await session.stats()
        synced = stats["textHash"] == hashlib.sha256(session.text.encode("utf-8")).hexdigest()
    finally:
        await session.stop()
    med = {k: statistics.median(r[k] for r in rows) for k in ("server_ms", "model_ms", "reused_fraction")} if rows else {}
    return {
        "engine": first["engine"], "startup_s": startup_s, "first_pass_ms": first_ms, "edits": len(rows),
        "latency_ms": _summary([r["latency_ms"] for r in rows]),
        "classification_latency_ms": _summary([r["classification_ms"] for r in rows]),
        "server_ms": _summary([r["server_ms"] for r in rows]),
        "model_ms": _summary([r["model_ms"] for r in rows]),
        "reused_fraction_median": med.get("reused_fraction"),
        "changed_tokens_mean": statistics.fmean(r["changed_tokens"] for r in rows) if rows else None,
        "overhead_ms_median": (statistics.median(r["latency_ms"] - r["server_ms"] for r in rows) if rows else None),
        "rest_of_update_ms_median": (statistics.median(r["server_ms"] - r["model_ms"] for r in rows) if rows else None),
        "in_sync": bool(synced), "state_bytes": stats.get("state_bytes"),
    }


def run(args: argparse.Namespace) -> int:
    text, n_tokens = make_document(args.tokens, args.model, args.seed)
    edits = keystrokes(text, args.edits, args.seed)
    options = {"model": args.model, "device": args.device, "debounceMs": args.debounce_ms,
               "positionPolicy": args.position_policy, "maxDocumentTokens": max(4096, 2 * n_tokens)}
    incremental = asyncio.run(replay(text, edits, options, dense=False, threads=args.threads))
    dense = (
        asyncio.run(replay(text, edits[: args.dense_edits], options, dense=True, threads=args.threads))
        if args.dense_edits else {}
    )
    result = {
        "tokens": n_tokens, "edits": incremental["edits"],
        "latency_ms": {k: incremental["latency_ms"][k] for k in ("p50", "p95", "max")},
        "dense_ms_median": dense.get("latency_ms", {}).get("p50"),
        "model": args.model or "default", "device": args.device, "debounce_ms": args.debounce_ms,
        "position_policy": args.position_policy, "threads": args.threads or 1,
        "incremental": incremental, "dense": dense,
    }
    if dense:
        result["dense_over_incremental_p50"] = dense["latency_ms"]["p50"] / incremental["latency_ms"]["p50"]
    _print(result)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json_path}")
    return 0 if incremental["in_sync"] else 1


def _print(result: dict) -> None:
    inc, dense = result["incremental"], result["dense"]
    print(f"vqlsp bench lsp: {result['tokens']} tokens, {result['edits']} keystrokes, model {result['model']}, "
          f"device {result['device']}, threads {result['threads']}, debounce {result['debounce_ms']:g} ms, {result['position_policy']} positions")
    print(f"{'':24} {'p50':>9} {'p95':>9} {'max':>9}")
    for name, summary in (("keystroke -> publish", inc["latency_ms"]), ("  server update", inc["server_ms"]),
                          ("  model (engine apply)", inc["model_ms"])):
        print(f"{name:<24} {summary['p50']:>7.1f}ms {summary['p95']:>7.1f}ms {summary['max']:>7.1f}ms")
    if dense:
        d = dense["latency_ms"]
        print(f"{'dense keystroke->publish':<24} {d['p50']:>7.1f}ms {d['p95']:>7.1f}ms {d['max']:>7.1f}ms"
              f"   ({dense['edits']} keystrokes; p50 ratio dense/incremental "
              f"{result['dense_over_incremental_p50']:.1f}x)")
    print(f"reused (row, layer) work, median: {inc['reused_fraction_median']:.1%}; changed tokens per keystroke, "
          f"mean: {inc['changed_tokens_mean']:.1f}; transport+scheduling median {inc['overhead_ms_median']:.1f} ms; "
          f"rest of update median {inc['rest_of_update_ms_median']:.1f} ms")
    print(f"first full pass {inc['first_pass_ms']:.0f} ms; server start to first result {inc['startup_s']:.1f} s; "
          f"in sync: {inc['in_sync']}")
    sys.stdout.flush()
