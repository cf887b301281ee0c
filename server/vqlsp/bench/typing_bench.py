"""``vqlsp bench typing``: keystroke -> covering result, with edits sent on a clock (issue 13).

A client starts the real server (``vqlsp serve``, one torch thread unless
``--threads``) as a subprocess over stdio, opens a BBC News document of each
``--tokens`` size and replays edit streams (``typing_traces``) *on a clock*: each
``didChange`` goes out at its planned time whatever the server has answered, as
a person types. A keystroke (one ``didChange``, one version) is *covered* when a
``vqlsp/classification`` of its version or a later one arrives: a later version
covers every earlier keystroke, and a server may publish an older version's
result while typing goes on. Per keystroke the latency is send -> covering
arrival (DESIGN.md, "Measuring": p50 / p95 / p99 / max).

Per scenario it also reports the longest *uncovered run* (consecutive keystrokes
k with no result whose version lies in ``[v_k, v_k+1)``: the writer saw nothing
for them), keystrokes never covered, results computed but dropped
(``resultsDropped`` of ``vqlsp.documentStats``, null when the server does not
report it), the keystrokes sent while a settle ran (inside ``[arrival - ms,
arrival]`` of a ``settled`` classification) and those sent after a pause longer
than ``settleMs``, and whether the final state equals a dense classification of
the final text: once the stream ends the bench waits for the final version's
result at exact positions (``positionDrift`` 0, after the settle) and compares
its probabilities with ``vqlsp.analysis.reference.dense_document`` over the
sections ``vqlsp.documentStats`` reports (``--reference``: after every scenario,
or only the last one of a long document); a server that reports no sections is
compared on one section, the tokens it analysed (``analysedTokens``). On open:
the time to the first result and to the whole document's result, and how long
the server's event loop was busy, from the round trips of ``$/vqlsp/probe``
requests (``client.PROBE``) sent back to back while the document opens (a
warm-up document is opened and closed first, so the model's loading is not
counted), and by the server's own meter (``vqlsp serve --loop-lag``, see
``lsp.loop_lag``): a probe's round trip also counts the time this client spends
parsing what the server sent (~100 ms for the thousands of diagnostics of a
100k-token document), the meter only what the server's loop spent. Each
scenario reports the meter's figure too.

As VS Code does on every cursor move, the client says where the writer is: a
``textDocument/codeAction`` at each stream's first edit, sent with the didOpen
for the first stream (the editor restores the cursor as it opens the file) and
``CURSOR_LEAD_S`` before a later stream that starts elsewhere (``--no-cursor``:
never, as a client that sends nothing until the first keystroke).

One server per document size; its scenarios run one after another on the same
document (each planned on the text the previous one left, after the previous
one's final result). ``--suite`` runs the issue's matrix (``SUITE`` on
``SUITE_SIZES``); ``--tokens 1024 --interval 100 --keys 60`` is a quick run.
Server options the bench does not set keep the server's defaults (``debounceMs``,
``settleMs``, ...; ``--server-option`` sets any); the server runs on one thread.

JSON (``--json PATH``, rewritten after each document)::

    {"bench": "typing", "model", "device", "threads", "server_options", "settle_ms", "keys", "seed", "cursor",
     "documents": [{"size", "tokens", "chars", "bytes",
        "open": {"server_ready_s", "first_result_ms", "whole_result_ms", "truncated", "analysed_tokens",
                 "probe_idle_ms", "probe_first_ms", "probe_max_ms", "probes": [[t_s, rtt_ms]],
                 "server_loop_max_ms"},
        "scenarios": [{"scenario", "kind", "interval_ms", "keys", "changes",
           "latency_ms": {"p50", "p95", "p99", "max", "mean", "n"} | null, "not_covered",
           "longest_uncovered_run", "own_version_results", "max_result_gap_ms", "send_lateness_max_ms",
           "during_settle": {"keys", "latency_ms"}, "after_pause": {"keys", "latency_ms"},
           "server_update_ms", "server_loop_max_ms", "server_gc", "results_dropped", "updates_started", "settles_started",
           "final": {"version", "settled", "wait_ms", "in_sync", "server_tokens", "analysed_tokens",
                     "position_drift", "label", "probabilities", "sections",
                     "reference": {"label", "probabilities", "ms", "sections", "sections_from", "tokens"}
                                  | {"skipped"},
                     "max_abs_prob_diff", "equal": true | false | null (not compared)},
           (in_sync: the server's textHash equals the client's text's; null if the server sent none)
           "keystrokes": [[t_s, version, latency_ms | null, own_result, flags]],
           "classifications": [[t_s, params]], "diagnostics": [[t_s, version, count]]}]}]}

Times in ``keystrokes`` / ``classifications`` / ``diagnostics`` are seconds from
the stream's start; flags: ``p`` after a pause, ``s`` sent during a settle.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import statistics
import sys
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..lsp.loop_lag import busiest
from . import server_options
from .typing_traces import SCENARIOS, Plan, make_plan, parse_size

SUITE_SIZES = ("1k", "4k", "16k", "100k", "2MB")
SUITE = (  # (scenario, interval ms): the matrix, run on every size
    ("type-middle", 50), ("type-middle", 100), ("type-middle", 200),
    ("jitter", 50), ("jitter", 100), ("jitter", 200),
    ("bursts", None), ("settle", 100),
    ("type-start", 100), ("type-end", 100),
    ("delete-start", 100), ("delete-middle", 100), ("delete-end", 100),
    ("multicursor", 100), ("replace-all", None),
)
PROBE_GAP_S = 0.02  # between one probe's answer and the next probe, while a document opens
IDLE_PROBES = 5
REFERENCE_EACH_TOKENS = 16384  # --reference auto: a dense reference after every scenario up to this length
# Opened (and closed) first, so the measured open excludes loading the model.
WARMUP = ("file:///vqlsp/warmup.txt", "The committee published its report on Monday, with new tables.")
DOCUMENT_URI = "file:///vqlsp/typing.txt"
# A writer who moves the cursor to another place starts typing there this much later (at the
# earliest: a click, then the hands back on the keys).
CURSOR_LEAD_S = 0.5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokens", nargs="+", metavar="SIZE",
                   help="document sizes: tokens (1024, 4k = 4096, 100k) or bytes of text (2MB = 2 MiB) "
                   "(default 1024; --suite: " + " ".join(SUITE_SIZES) + ")")
    p.add_argument("--scenario", nargs="+", choices=list(SCENARIOS), default=["type-middle"], metavar="NAME",
                   help="edit streams (default type-middle): " + "; ".join(
                       f"{name}: {text}" for name, (_, _, text) in SCENARIOS.items()))
    p.add_argument("--interval", nargs="+", type=float, default=[100.0], metavar="MS",
                   help="keystroke interval(s) in ms, for the scenarios that take one (default 100)")
    p.add_argument("--keys", type=int, default=100, help="keystrokes per scenario (default 100)")
    p.add_argument("--suite", action="store_true", help="the whole matrix: every scenario, 50/100/200 ms, "
                   "1k-100k tokens and 2 MB (sizes can still be chosen with --tokens)")
    p.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, server and reference (default 1)")
    p.add_argument("--debounce-ms", type=float, help="server debounceMs (default: the server's)")
    p.add_argument("--settle-ms", type=float, help="server settleMs (default: the server's)")
    p.add_argument("--position-policy", choices=["stable", "exact"], help="(default: the server's)")
    server_options.add_argument(p)
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait after a stream for its final, settled result (default 300)")
    p.add_argument("--open-timeout", type=float, default=3600.0, help="seconds to wait for a document's "
                   "first whole result (default 3600)")
    p.add_argument("--type-during-open", action="store_true", help="start typing once the first result "
                   "arrives, while the server still analyses the rest of the document in the background "
                   "(what a writer who opens a very long file does; the whole-document time is then "
                   "reported when it arrives)")
    p.add_argument("--no-cursor", dest="cursor", action="store_false",
                   help="never say where the cursor is (by default the client sends a textDocument/codeAction "
                   "at each stream's first edit, as VS Code does on every cursor move: on open, and "
                   f"{CURSOR_LEAD_S * 1e3:.0f} ms before a later stream starts)")
    p.add_argument("--reference", choices=["auto", "each", "last", "none"], default="auto",
                   help="compare the final state with a dense classification after each scenario, after the "
                   f"last one, or never; auto: each up to {REFERENCE_EACH_TOKENS} tokens, else the last (a dense "
                   "pass over a long document takes minutes)")
    p.add_argument("--reference-max-tokens", type=int, default=8192,
                   help="skip the reference when one section is longer than this (default 8192)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="final == dense: max |p - p_dense| (default 1e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_path", help="write the results here")
    p.add_argument("--plot", help="write the latency-over-session PNG here (default: beside --json)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..lsp.options import Options
    from ..model.registry import load_tokenizer
    from ..text.tokenizer import TextTokenizer
    from .typing_traces import bbc_text, typing_source

    torch.set_num_threads(args.threads)
    sizes = [parse_size(s) for s in (args.tokens or (SUITE_SIZES if args.suite else ["1024"]))]
    if args.suite:
        matrix = list(SUITE)
    else:
        matrix = [(kind, ms) for kind in args.scenario
                  for ms in (args.interval if SCENARIOS[kind][1] else [None])]
    options = {"model": args.model, "device": args.device}
    for key, value in (("debounceMs", args.debounce_ms), ("settleMs", args.settle_ms),
                       ("positionPolicy", args.position_policy)):
        if value is not None:
            options[key] = value
    options.update(server_options.parse(args.server_option))
    settle_ms = Options().settle_ms if args.settle_ms is None else args.settle_ms
    tokenizer = TextTokenizer(load_tokenizer(args.model))
    source = typing_source(args.seed)
    reference = None if args.reference == "none" else Reference(args.model, args.reference_max_tokens)
    result = {"bench": "typing", "model": args.model or "default", "device": args.device, "threads": args.threads,
              "server_options": options, "settle_ms": settle_ms, "keys": args.keys, "seed": args.seed, "cursor": args.cursor,
              "documents": []}
    plot_path = args.plot or (str(Path(args.json_path).with_suffix(".png")) if args.json_path else None)
    print(f"vqlsp bench typing: model {result['model']}, device {args.device}, server threads {args.threads}, "
          f"settleMs {settle_ms:g}, {args.keys} keys per scenario; latency = keystroke sent -> first "
          "classification of its version or a later one")
    ok = True
    for size in sizes:
        text = bbc_text(tokenizer, size, args.seed)
        doc = {"size": size.label, "tokens": len(tokenizer.encode_ids(text)), "chars": len(text),
               "bytes": len(text.encode())}

        def plans(current: str, n: int) -> Plan:  # planned on the text each stream starts from
            kind, ms = matrix[n]
            return make_plan(kind, current, args.keys, ms, settle_ms, args.seed + n, source)

        doc.update(asyncio.run(bench_document(text, doc, len(matrix), plans, options, args, settle_ms,
                                              tokenizer, reference)))
        result["documents"].append(doc)
        ok = ok and all(s["not_covered"] == 0 and s["final"]["in_sync"] is not False
                        and s["final"]["equal"] is not False for s in doc["scenarios"])
        if args.json_path:
            Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json_path).write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    if args.json_path:
        print(f"wrote {args.json_path}")
    if plot_path:
        plot(result, plot_path)
        print(f"wrote {plot_path}")
    return 0 if ok else 1


# -- one server, one document -------------------------------------------------------------


async def bench_document(text, doc, n_plans, plans, options, args, settle_ms, tokenizer, reference) -> dict:
    from ..lsp.client import StdioSession

    session = StdioSession(["--threads", str(args.threads), "--loop-lag"])
    scenarios = []
    try:
        await session.start(options)
        first = plans(text, 0)
        cursor = _cursor(first) if args.cursor else None  # (the editor restores it as it opens the file)
        opened = await open_document(session, text, args.open_timeout, wait_whole=not args.type_during_open,
                                     cursor=cursor)
        print(f"\n{doc['size']}: {doc['tokens']:,} tokens, {doc['bytes'] / 1e3:,.0f} KB; open: first result "
              f"{opened['first_result_ms']:.0f} ms, whole document {opened['whole_result_ms']:.0f} ms"
              f"{' (truncated by the server)' if opened['truncated'] else ''}; event loop busy up to "
              f"{opened['probe_max_ms'] or 0:.0f} ms (probe round trip; idle {opened['probe_idle_ms']:.1f} ms), "
              f"by its own meter {opened['server_loop_max_ms'] or 0:.0f} ms")
        print_header()
        for n in range(n_plans):
            plan = first if n == 0 else plans(session.text, n)
            if not plan.steps:
                print(f"{plan.name}: nothing to do on this text (skipped)")
                continue
            if n and args.cursor and (where := _cursor(plan)) != cursor:
                session.place_cursor(cursor := where)
                await asyncio.sleep(CURSOR_LEAD_S)
            row = await run_stream(session, plan, args, settle_ms)
            if reference is not None and (n == n_plans - 1 or args.reference == "each" or (
                    args.reference == "auto" and doc["tokens"] <= REFERENCE_EACH_TOKENS)):
                row["final"].update(reference.compare(session.text, tokenizer, row["final"], args.tolerance))
            scenarios.append(row)
            print_row(doc["size"], row)
    except Exception:
        if session.stderr_tail:
            print("server log (last lines):\n  " + "\n  ".join(session.stderr_tail), file=sys.stderr)
        raise
    finally:
        await session.stop()
    return {"open": opened, "scenarios": scenarios}


async def open_document(session, text: str, timeout: float, *, wait_whole: bool = True,
                        cursor: int | None = None) -> dict:
    """A warm-up document first (the model loads); then didOpen (with the cursor at code point
    ``cursor``, if given), the time to the first and to the whole document's result, and how
    long the server's event loop was busy meanwhile."""
    started = time.perf_counter()
    session.open(WARMUP[1], uri=WARMUP[0])
    await session.wait_until(lambda: _first(session, lambda p: True), timeout)
    model_ready = time.perf_counter() - started
    before = (await session.stats()).get("loopLag")
    session.close()
    idle = [b - a for a, b in [await session.probe() for _ in range(IDLE_PROBES)]]
    opened = session.open(text, uri=DOCUMENT_URI)
    if cursor is not None:
        session.place_cursor(cursor)
    probes: list[tuple[float, float]] = []
    done = asyncio.Event()

    async def probing():
        while not done.is_set():
            sent, answered = await session.probe()
            probes.append((sent - opened, answered - sent))
            await asyncio.sleep(PROBE_GAP_S)

    task = asyncio.create_task(probing())
    try:
        first = await session.wait_until(lambda: _first(session, lambda p: p["version"] == 1), timeout)
        if wait_whole:
            whole = await session.wait_until(lambda: _first(session, lambda p: p["version"] == 1 and _whole(p)), timeout)
        else:
            whole = _first(session, lambda p: _whole(p)) or (float("nan"), first[1])
    finally:
        done.set()
        await asyncio.wait_for(task, timeout)
    after = (await session.stats()).get("loopLag")
    return {
        "server_loop_max_ms": busiest(after, before["now"]) if before and after else None,
        "server_ready_s": model_ready,
        "first_result_ms": (first[0] - opened) * 1e3, "whole_result_ms": (whole[0] - opened) * 1e3,
        "truncated": bool(whole[1].get("truncated")), "analysed_tokens": whole[1]["analysedTokens"],
        "probe_idle_ms": statistics.median(idle) * 1e3,
        "probe_first_ms": probes[0][1] * 1e3 if probes else None,
        "probe_max_ms": max(rtt for _, rtt in probes) * 1e3 if probes else None,
        "probes": [[round(t, 4), round(rtt * 1e3, 2)] for t, rtt in probes],
    }


def _cursor(plan: Plan) -> int | None:
    """Where ``plan``'s writer starts: its first edit's first character."""
    return plan.steps[0].changes[0][0] if plan.steps else None


def _whole(params: dict) -> bool:
    """Does a classification cover the whole document (or all the server means to analyse)?"""
    if params.get("truncated"):  # a server that analyses a prefix only (maxDocumentTokens)
        return True
    sections, done = params.get("sections"), params.get("sectionsAnalysed")
    if isinstance(sections, int) and done is not None and done < sections:
        return False
    return params["analysedTokens"] >= params["tokens"]


def _first(session, test):
    """The first classification of the session's document that passes ``test``."""
    return next(((t, p) for t, p in session.events if p["uri"] == session.uri and test(p)), None)


async def run_stream(session, plan: Plan, args, settle_ms: float) -> dict:
    """Send ``plan``'s steps on the clock, wait for the final settled result, measure."""
    before = await session.stats()
    n_events, n_diagnostics = len(session.events), len(session.diagnostic_events)
    start = time.perf_counter() + 0.05
    keys: list[tuple[int, float]] = []  # (version, sent)
    lateness = 0.0
    for step in plan.steps:
        delay = start + step.at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = session.change_many(step.changes)
        lateness = max(lateness, sent - start - step.at)
        keys.append((session.version, sent))
    final_version = session.version

    def final_ready():  # the final version's result, at exact positions unless nothing settles
        for arrival, params in reversed(session.events):
            exact = settle_ms <= 0 or not params.get("positionDrift")
            if params["uri"] == session.uri and params["version"] == final_version and exact:
                return arrival, params
        return None

    waited = time.perf_counter()
    try:
        _, final = await session.wait_until(final_ready, args.timeout)
        settled = True
    except asyncio.TimeoutError:  # report what was published last
        final = next((p for _, p in reversed(session.events) if p["uri"] == session.uri), {})
        settled = False
    waited = time.perf_counter() - waited
    after = await session.stats()

    events = [(t, p) for t, p in session.events[n_events:] if p["uri"] == session.uri]
    latencies, own = coverage(keys, [(t, p["version"]) for t, p in events])
    windows = [(t - p["ms"] / 1e3, t) for t, p in events if p.get("settled")]
    during = [any(a <= sent <= b for a, b in windows) for _, sent in keys]
    paused = [step.after_pause for step in plan.steps]
    typing_end = max((sent + lat / 1e3 for (_, sent), lat in zip(keys, latencies) if lat is not None),
                     default=keys[-1][1])
    arrivals = [t for t, _ in events if start <= t <= typing_end]
    gaps = [b - a for a, b in zip([start, *arrivals], [*arrivals, typing_end])]

    def subset(mask):
        chosen = [lat for lat, m in zip(latencies, mask) if m and lat is not None]
        return {"keys": sum(mask), "latency_ms": summarize(chosen)}

    return {
        "scenario": plan.name, "kind": plan.kind, "interval_ms": plan.interval_ms, "keys": len(keys),
        "changes": sum(len(s.changes) for s in plan.steps),
        "latency_ms": summarize([lat for lat in latencies if lat is not None]),
        "not_covered": sum(lat is None for lat in latencies),
        "longest_uncovered_run": longest_run([not o for o in own]),
        "own_version_results": sum(own),
        "max_result_gap_ms": max(gaps) * 1e3,
        "send_lateness_max_ms": lateness * 1e3,
        "during_settle": subset(during), "after_pause": subset(paused),
        "server_update_ms": summarize([p["ms"] for _, p in events if not p.get("settled")]),
        "server_loop_max_ms": busiest(after["loopLag"], before["loopLag"]["now"])
        if "loopLag" in before and "loopLag" in after else None,
        "server_gc": after.get("gc"),  # collections per generation and the longest of each, since start
        "results_dropped": _delta(before, after, "resultsDropped"),
        "updates_started": _delta(before, after, "updatesStarted"),
        "settles_started": _delta(before, after, "settlesStarted"),
        "final": {
            "version": final_version, "settled": settled, "wait_ms": waited * 1e3,
            "in_sync": None if after.get("textHash") is None  # a server may not hash long texts
            else after["textHash"] == hashlib.sha256(session.text.encode("utf-8")).hexdigest(),
            "server_tokens": after.get("tokens"), "analysed_tokens": final.get("analysedTokens"),
            "position_drift": final.get("positionDrift"), "label": final.get("label"),
            "probabilities": final.get("probabilities"), "sections": after.get("sections"),
            "equal": None,
        },
        "keystrokes": [
            [round(sent - start, 4), version, None if lat is None else round(lat, 2), o,
             ("p" if p else "") + ("s" if d else "")]
            for (version, sent), lat, o, p, d in zip(keys, latencies, own, paused, during)
        ],
        "classifications": [[round(t - start, 4), p] for t, p in events],
        "diagnostics": [[round(t - start, 4), v, n] for t, v, n in session.diagnostic_events[n_diagnostics:]],
    }


def _delta(before: dict, after: dict, key: str):
    if key not in after:
        return None
    return after[key] - before.get(key, 0)


# -- measures (pure) ----------------------------------------------------------------------


def coverage(keys: Sequence[tuple[int, float]], arrivals: Sequence[tuple[float, int]]
             ) -> tuple[list[float | None], list[bool]]:
    """Per keystroke ``(version, sent)`` (ascending versions): the ms until a result of its
    version or a later one arrived (None: never), and whether a result whose version lies in
    ``[v_k, v_k+1)`` was published (for the last keystroke: any version from ``v_k`` on)."""
    ordered = sorted(arrivals)
    latencies: list[float | None] = []
    j, best, crossed = 0, -math.inf, 0.0
    for version, sent in keys:
        while best < version and j < len(ordered):
            t, v = ordered[j]
            j += 1
            if v > best:
                best, crossed = v, t
        latencies.append((crossed - sent) * 1e3 if best >= version else None)
    versions = sorted(v for _, v in arrivals)
    own = []
    for i, (version, _) in enumerate(keys):
        upper = keys[i + 1][0] if i + 1 < len(keys) else math.inf
        at = bisect_left(versions, version)
        own.append(at < len(versions) and versions[at] < upper)
    return latencies, own


def longest_run(flags: Sequence[bool]) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def summarize(values: Sequence[float]) -> dict[str, float] | None:
    """p50 / p95 / p99 / max / mean (nearest rank, as ``vqlsp bench lsp``); None when empty."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": statistics.median(ordered), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1],
            "mean": statistics.fmean(ordered), "n": len(ordered)}


# -- the dense reference -------------------------------------------------------------------


@dataclass
class Reference:
    """A dense classification of the final text in this process, on the server's model."""

    model_path: str | None
    max_tokens: int
    model: object = None

    def compare(self, text: str, tokenizer, final: dict, tolerance: float) -> dict:
        ids = tokenizer.encode_ids(text)
        sections, source = final.get("sections"), "documentStats"
        if not sections:
            analysed = final.get("analysed_tokens") or len(ids)
            sections, source = [[0, analysed]], "one section: the tokens the server analysed (no sections reported)"
        longest = max((b - a for a, b in sections), default=0)
        if longest > self.max_tokens:
            return {"reference": {"skipped": f"a section of {longest} tokens > --reference-max-tokens"}}
        if self.model is None:
            from ..model.registry import load_model

            self.model = load_model(self.model_path, "cpu")
        t0 = time.perf_counter()
        probabilities = dense_document(self.model, ids, [tuple(s) for s in sections])
        ms = (time.perf_counter() - t0) * 1e3
        served = final.get("probabilities") or {}
        diff = max((abs(served.get(k, math.nan) - p) for k, p in probabilities.items()), default=math.nan)
        label = max(probabilities, key=probabilities.get) if probabilities else None
        return {
            "reference": {"label": label, "probabilities": probabilities, "ms": ms, "sections": len(sections),
                          "sections_from": source, "tokens": len(ids)},
            "max_abs_prob_diff": diff,
            "equal": bool(diff <= tolerance and label == final.get("label") and final.get("settled")),
        }


def dense_document(model, ids: Sequence[int], sections: Sequence[tuple[int, int]]) -> dict[str, float]:
    """``vqlsp.analysis.reference.dense_document`` where it exists; before that, the server
    analysed one section, and its reference is a dense classification of it."""
    try:
        from ..analysis.reference import dense_document as sectioned
    except ImportError:
        from ..model.predict import classify_ids

        if len(sections) != 1:
            raise RuntimeError("the server reports sections but vqlsp.analysis.reference is missing") from None
        (a, b), = sections
        return classify_ids(model, ids[a:b]).probabilities
    return sectioned(model, ids, sections)


# -- printing and plotting ----------------------------------------------------------------

_COLUMNS = (f"{'scenario':<20} {'doc':>6} {'keys':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} "
            f"{'uncov':>5} {'never':>5} {'drop':>5} {'settle-key p95':>14} {'loop max':>8} {'final=dense':>11}")


def print_header() -> None:
    print(_COLUMNS)


def print_row(size: str, r: dict) -> None:
    def ms(summary, key):
        return f"{summary[key]:6.0f}ms" if summary else f"{'-':>8}"

    lat, during = r["latency_ms"], r["during_settle"]["latency_ms"] or r["after_pause"]["latency_ms"]
    final = r["final"]
    equal = "-" if final["equal"] is None else ("yes" if final["equal"] else "NO")
    if final.get("max_abs_prob_diff") is not None and not math.isnan(final["max_abs_prob_diff"]):
        equal += f" {final['max_abs_prob_diff']:.0e}"
    dropped = "-" if r["results_dropped"] is None else str(r["results_dropped"])
    loop = "-" if r.get("server_loop_max_ms") is None else f"{r['server_loop_max_ms']:.0f}ms"
    print(f"{r['scenario']:<20} {size:>6} {r['keys']:>5} {ms(lat, 'p50')} {ms(lat, 'p95')} {ms(lat, 'p99')} "
          f"{ms(lat, 'max')} {r['longest_uncovered_run']:>5} {r['not_covered']:>5} {dropped:>5} "
          f"{ms(during, 'p95'):>14} {loop:>8} {equal:>11}")
    sys.stdout.flush()


def print_table(result: dict) -> None:
    print("\nsummary (latency: keystroke -> covering classification; uncov: longest run of keystrokes "
          "without their own result; never: not covered at all; drop: results computed but dropped; "
          "settle-key: keystrokes sent during a settle, else after a pause > settleMs)")
    print_header()
    for doc in result["documents"]:
        for row in doc["scenarios"]:
            print_row(doc["size"], row)


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["scenario"] for d in result["documents"] for r in d["scenarios"]))
    if not names:
        return
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for doc in result["documents"]:
            for r in (r for r in doc["scenarios"] if r["scenario"] == name):
                t = [k[0] for k in r["keystrokes"] if k[2] is not None]
                y = [k[2] for k in r["keystrokes"] if k[2] is not None]
                line, = ax.plot(t, y, marker=".", linewidth=0.8, label=doc["size"])
                marked = [(k[0], k[2]) for k in r["keystrokes"] if k[2] is not None and k[4]]
                if marked:
                    ax.scatter(*zip(*marked), marker="o", facecolors="none", edgecolors=line.get_color())
                never = [k[0] for k in r["keystrokes"] if k[2] is None]
                if never:
                    ax.scatter(never, [max(y, default=1)] * len(never), marker="x", color="red")
        ax.set_title(name)
        ax.set_yscale("log")
        ax.set_xlabel("keystroke sent (s)")
        ax.set_ylabel("latency to a covering result (ms)")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("vqlsp bench typing (circles: after a pause / during a settle; x: never covered)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
