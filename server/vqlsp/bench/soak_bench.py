"""``vqlsp bench soak``: the server's memory over a long day of editing, over real stdio (issue 16).

A client starts the real server (``vqlsp serve``) as a subprocess and samples its
resident set size (``VmRSS`` of ``/proc/PID/status``) every ``--sample-s`` while
it drives one of three scenarios:

* ``soak`` (default): ``--edits`` (20,000) edits across ``--documents`` (50)
  prose documents, at most ``--open`` of them open at once: a visit opens the
  document if needed (closing the least recently visited one), sends a burst of
  ``--burst`` edits ``--interval-ms`` apart (typing with backspaces at a random
  place, now and then a pasted or deleted sentence) and waits for a result that
  covers the burst. A closed document keeps its text and is reopened with it.
  After the last edit every open document's ``textHash`` is compared with the
  client's text, then all are closed. Target: flat RSS after warm-up (the first
  ``--warmup`` share of the edits), judged two ways, both reported: no sample more
  than 10% above the sample at warm-up's end (strict: one sample mid-update can
  miss it), and no level (the median over ``LEVEL_WINDOW_S``) more than 10% above
  the first level after warm-up; the median of each quarter after warm-up shows
  a trend apart from humps (which documents are open, what is being computed).
* ``reopen``: one document of ``--size`` characters (default 2 MB) opened, held
  ``--hold-s`` seconds, closed, ``--cycles`` times (default 4): RSS after each close.
* ``many``: ``--count`` (5,000) small documents opened, each classified (or
  ``--hold-s`` passed), then all closed: the share of RSS growth given back.

Before any scenario a small document is opened, classified and closed, so the
baseline includes the loaded model. "After a close" is read once RSS is steady
(the server has answered a request sent after the closes, and four samples 0.5 s apart
lie within 1%, at most 60 s), past the server's
delay before it hands freed memory back (``lsp.heap``).

JSON (``--json PATH``)::

    {"bench": "soak", "scenario", "model", "device", "options", "samples": [[t_s, edits, rss_mib, open]],
     "marks": [[t_s, what]], "figures": {...per scenario...}, "in_sync": true | false | null,
     "tracebacks": int, "duration_s"}

The PNG (``--plot PATH``) is RSS over time with the marks.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from . import server_options

SCENARIOS = ("soak", "reopen", "many")
TRIM_ABOVE = 1.05  # soak: a document this much longer than it started loses text (``burst_edits``)
LEVEL_WINDOW_S = 30.0  # soak: RSS "level" = the median of the samples of this window (``levels``)
_TYPED = ("Meanwhile the committee published a longer report on the results, with 42 new tables. "
          "Nobody expected the vote to pass so quickly; the mood in the room changed at once. ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", choices=SCENARIOS, default="soak")
    parser.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=0, help="the server's torch threads (default: the server's, 1)")
    parser.add_argument("--edits", type=int, default=20_000, help="soak: edits in all (default 20,000)")
    parser.add_argument("--documents", type=int, default=50, help="soak: documents (default 50)")
    parser.add_argument("--open", type=int, default=10, help="soak: documents open at once at most (default 10)")
    parser.add_argument("--doc-chars", type=int, default=3000, help="soak: characters per document (default 3000)")
    parser.add_argument("--burst", type=int, default=40, help="soak: edits per visit (default 40)")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="soak: between edits of a burst (default 10)")
    parser.add_argument("--warmup", type=float, default=0.2, help="soak: share of edits that is warm-up (default 0.2)")
    parser.add_argument("--size", default="2MB", help="reopen: document size, e.g. 2MB, 500k (default 2MB)")
    parser.add_argument("--cycles", type=int, default=4, help="reopen: open/close cycles (default 4)")
    parser.add_argument("--count", type=int, default=5000, help="many: documents (default 5,000)")
    parser.add_argument("--hold-s", type=float, default=30.0,
                        help="reopen: seconds a document stays open; many: longest wait for all results (default 30)")
    parser.add_argument("--sample-s", type=float, default=0.5, help="RSS sampling period (default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    server_options.add_argument(parser)
    parser.add_argument("--json", dest="json_path", help="write the results here")
    parser.add_argument("--plot", help="write RSS over time here (PNG)")


def parse_size(text: str) -> int:
    """``2MB`` -> 2,000,000 characters (``k``/``KB``: 1,000; ``MB``: 1,000,000)."""
    t = text.strip().lower().removesuffix("b")
    scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t.rstrip("km")) * scale)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# -- edits ---------------------------------------------------------------------------------


def burst_edits(text: str, count: int, rng: random.Random, target_chars: int) -> list[tuple[int, int, str]]:
    """``count`` edits as a writer makes them (each relative to the text after the previous one):
    typing at a random sentence boundary with backspaces, and now and then a pasted or deleted
    sentence; a document longer than ``target_chars`` by ``TRIM_ABOVE`` loses text after the
    cursor. So documents keep their length over a soak (without that, pastes outweighed
    deletions and 20,000 edits grew 50 documents from 3,000 to 4,000 characters: open state,
    and RSS with it, rose a quarter after warm-up by design, not by a leak)."""
    out: list[tuple[int, int, str]] = []
    at = text.find(" ", rng.randrange(len(text))) + 1 if text else 0
    typed = 0
    phrase = rng.randrange(len(_TYPED))
    length = len(text)
    while len(out) < count:
        roll = rng.random()
        if roll < 0.04:  # paste a sentence where the cursor is
            new = _TYPED[:88]
            out.append((at + typed, at + typed, new))
            typed += len(new)
            length += len(new)
        elif roll < 0.08 or length > TRIM_ABOVE * target_chars:  # delete what follows the cursor, up to 80 chars
            end = min(length, at + typed + rng.randint(5, 80))
            out.append((at + typed, end, ""))
            length -= end - (at + typed)
        elif roll < 0.18 and typed:  # a backspace
            out.append((at + typed - 1, at + typed, ""))
            typed -= 1
            length -= 1
        else:
            ch = _TYPED[(phrase + len(out)) % len(_TYPED)]
            out.append((at + typed, at + typed, ch))
            typed += 1
            length += 1
    return out


def apply(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


# -- the client ----------------------------------------------------------------------------


class SoakClient:
    """A ``StdioSession`` driving many documents: their texts and versions, covering results,
    the server's RSS sampled in the background."""

    def __init__(self, args: argparse.Namespace):
        from vqlsp.lsp.client import StdioSession

        self.args = args
        self.session = StdioSession(["--threads", str(args.threads)] if args.threads else [])
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.latest: dict[str, int] = {}  # uri -> newest version classified
        self._seen = 0
        self.samples: list[list[float]] = []
        self.marks: list[tuple[float, str]] = []
        self.edits = 0
        self.t0 = time.perf_counter()
        self._sampler: asyncio.Task | None = None

    async def start(self) -> None:
        options: dict[str, Any] = {"device": self.args.device}
        if self.args.model:
            options["model"] = self.args.model
        options.update(server_options.parse(self.args.server_option))
        self.options = options
        await self.session.start(options)
        self.pid = self.session.client._server.pid  # (pygls keeps the subprocess there)
        self._sampler = asyncio.create_task(self._sample_forever())

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        await self.session.stop()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def sample(self) -> float:
        rss = rss_mib(self.pid)
        self.samples.append([round(self.now(), 3), self.edits, round(rss, 1), len(self.texts)])
        return rss

    def mark(self, what: str) -> None:
        self.marks.append((round(self.now(), 3), what))
        print(f"[{self.now():8.1f} s] {what}: RSS {self.sample():,.0f} MiB", file=sys.stderr, flush=True)

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.args.sample_s)

    # -- documents -------------------------------------------------------------------------

    def open(self, uri: str, text: str) -> None:
        from lsprotocol import types

        self.texts[uri] = text
        self.versions[uri] = self.versions.get(uri, 0) + 1  # a reopen continues the version count
        self.latest.pop(uri, None)
        self.session.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="plaintext", version=self.versions[uri], text=text)))

    def close(self, uri: str) -> str:
        from lsprotocol import types

        self.session.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
        self.latest.pop(uri, None)
        return self.texts.pop(uri)

    def change(self, uri: str, start: int, end: int, new: str) -> None:
        from lsprotocol import types

        from vqlsp.lsp.client import utf16_position

        text = self.texts[uri]
        rng = types.Range(start=utf16_position(text, start), end=utf16_position(text, end))
        self.texts[uri] = apply(text, start, end, new)
        self.versions[uri] += 1
        self.edits += 1
        self.session.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangePartial(range=rng, text=new)]))

    def _catch_up(self) -> None:
        events = self.session.events
        for _, params in events[self._seen:]:
            uri, version = params["uri"], params["version"]
            if uri in self.texts and version >= self.latest.get(uri, -1):
                self.latest[uri] = version
        self._seen = len(events)
        if self._seen > 10_000:  # the session keeps every event: keep it short
            del events[:self._seen]
            self._seen = 0

    def covered(self, uri: str) -> bool:
        self._catch_up()
        return self.latest.get(uri, -1) >= self.versions[uri]

    async def wait_covered(self, uris, timeout: float) -> bool:
        """True once every one of ``uris`` has a result of its current version (False: timed out)."""
        try:
            await self.session.wait_until(lambda: all(self.covered(u) for u in uris) or None, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def in_sync(self) -> bool:
        from lsprotocol import types

        from vqlsp.lsp.client import _plain

        for uri, text in self.texts.items():
            stats = _plain(await self.session.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="vqlsp.documentStats", arguments=[uri])))
            if stats["textHash"] != sha(text):
                print(f"{uri}: the server's text differs from the client's", file=sys.stderr)
                return False
        return True

    async def memory(self, uri: str) -> dict:
        """What ``vqlsp.documentStats`` says the server holds for ``uri`` (MiB): the states the
        budget counts (all documents'), their budget, and the document's own structures
        (``textBytes`` of ``vqlsp.documentFootprint``), beside the RSS sampled just before."""
        from lsprotocol import types

        from vqlsp.lsp.client import _plain

        stats = _plain(await self.session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="vqlsp.documentStats", arguments=[uri])))
        stats.update(_plain(await self.session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="vqlsp.documentFootprint", arguments=[uri]))))

        def mib(n: Any) -> float | None:
            return round(n / (1 << 20), 1) if isinstance(n, int) else None

        parts = {part: mib(n) for part, n in (stats.get("textBytesByPart") or {}).items()}
        return {"states_mib": mib(stats.get("total_state_bytes")), "budget_mib": mib(stats.get("budget_bytes")),
                "text_mib": mib(stats.get("textBytes")), "text_mib_by_part": parts,
                "cachedSections": stats.get("cachedSections"), "evictions": stats.get("evictions"),
                "memory_releases": stats.get("memory_releases"), "heap_releases": stats.get("heapReleases"),
                "sections": len(stats.get("sections") or ()), "spans": stats.get("spans"),
                "rss_mib": self.samples[-1][2]}

    async def steady(self, what: str) -> float:
        """RSS once the server has read everything sent and RSS stopped moving (four samples
        0.5 s apart within 1%, at most 60 s), marked ``what``."""
        from vqlsp.lsp.heap import RELEASE_DELAY_S

        await self.session.probe()  # answered after every message sent before it was handled
        await asyncio.sleep(RELEASE_DELAY_S + 0.5)
        deadline, recent = time.perf_counter() + 60, [rss_mib(self.pid)]
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            recent = [*recent[-3:], rss_mib(self.pid)]
            if len(recent) == 4 and max(recent) - min(recent) <= 0.01 * min(recent):
                break
        self.mark(what)
        return self.samples[-1][2]

    def tracebacks(self) -> int:
        return sum("Traceback" in line for line in self.session.stderr_tail)


# -- scenarios -----------------------------------------------------------------------------


async def warm_up(client: SoakClient) -> float:
    """Model loaded, one small document analysed and closed: the baseline RSS."""
    from .text_bench import make_prose

    uri = "file:///soak/warm-up.txt"
    client.open(uri, make_prose(400, random.Random(-1)))
    if not await client.wait_covered([uri], 600):
        raise RuntimeError("no result for the warm-up document within 600 s")
    client.close(uri)
    return await client.steady("baseline (model loaded, warm-up closed)")


async def soak(client: SoakClient, args: argparse.Namespace) -> dict:
    from .text_bench import make_prose

    rng = random.Random(args.seed)
    uris = [f"file:///soak/doc-{i:02d}.txt" for i in range(args.documents)]
    stored = {uri: make_prose(args.doc_chars, rng) for uri in uris}  # texts of closed documents
    lru: collections.OrderedDict[str, None] = collections.OrderedDict()
    opens = closes = visits = timeouts = 0
    warm_at: float | None = None
    baseline = await warm_up(client)
    started = time.perf_counter()
    while client.edits < args.edits:
        uri = rng.choice(uris)
        if uri not in lru:
            if len(lru) >= args.open:
                oldest, _ = lru.popitem(last=False)
                stored[oldest] = client.close(oldest)
                closes += 1
            client.open(uri, stored.pop(uri))
            opens += 1
        lru[uri] = None
        lru.move_to_end(uri)
        visits += 1
        for start, end, new in burst_edits(client.texts[uri], min(args.burst, args.edits - client.edits), rng,
                                           args.doc_chars):
            client.change(uri, start, end, new)
            await asyncio.sleep(args.interval_ms / 1000)
        if not await client.wait_covered([uri], 120):
            timeouts += 1
        if warm_at is None and client.edits >= args.warmup * args.edits:
            client.mark("warm-up over")
            warm_at = client.samples[-1][0]
        if visits % 50 == 0:
            rate = client.edits / (time.perf_counter() - started)
            print(f"  {client.edits:,} edits, {opens} opens, {closes} closes, {rate:.0f} edits/s, "
                  f"RSS {client.samples[-1][2]:,.0f} MiB", file=sys.stderr, flush=True)
    client.mark("last edit")
    synced = await client.in_sync()
    for uri in list(lru):
        stored[uri] = client.close(uri)
        closes += 1
    after_close = await client.steady("all closed")
    after = [s[2] for s in client.samples if warm_at is not None and s[0] >= warm_at and s[0] <= client.marks[-2][0]]
    warm = after[0] if after else None
    figures = {
        "edits": client.edits, "documents": args.documents, "opens": opens, "closes": closes, "visits": visits,
        "results_timed_out": timeouts, "edit_s": round(time.perf_counter() - started, 1),
        "rss_baseline_mib": round(baseline, 1), "rss_at_warmup_mib": warm,
        "rss_max_after_warmup_mib": max(after) if after else None,
        "rss_min_after_warmup_mib": min(after) if after else None,
        "rss_last_edit_mib": after[-1] if after else None, "rss_after_closing_all_mib": round(after_close, 1),
    }
    if warm:
        figures["peak_over_warmup_pct"] = round(100 * (max(after) - warm) / warm, 1)
        figures["last_over_warmup_pct"] = round(100 * (after[-1] - warm) / warm, 1)
        figures["flat_within_10pct"] = figures["peak_over_warmup_pct"] <= 10
        figures.update(level_figures([(s[0], s[2]) for s in client.samples
                                      if warm_at <= s[0] <= client.marks[-2][0]]))
    return {"figures": figures, "in_sync": synced}


def levels(samples: list[tuple[float, float]], window_s: float = LEVEL_WINDOW_S) -> list[tuple[float, float]]:
    """(t, median RSS of the samples of the ``window_s`` ending at t) for every sample with a
    full window behind it: RSS's level, without the spikes of single updates."""
    times = [t for t, _ in samples]
    out = []
    for k, (t, _) in enumerate(samples):
        if t - times[0] < window_s:
            continue
        first = bisect.bisect_right(times, t - window_s)
        out.append((t, statistics.median(rss for _, rss in samples[first:k + 1])))
    return out


def level_figures(after_warmup: list[tuple[float, float]]) -> dict:
    """The soak's target on RSS's level (``levels``) rather than on single samples: a sample
    catches RSS mid-update, a spike that says nothing of growth; the level is compared with
    the first full window after warm-up. Both criteria are reported."""
    lv = levels(after_warmup)
    if not lv:
        return {}
    start, top, last = lv[0][1], max(v for _, v in lv), lv[-1][1]
    n = len(after_warmup)
    quarters = [statistics.median(rss for _, rss in after_warmup[q * n // 4:(q + 1) * n // 4]) for q in range(4)]
    return {"level_window_s": LEVEL_WINDOW_S, "rss_level_at_warmup_mib": round(start, 1),
            "rss_level_max_mib": round(top, 1), "rss_level_last_mib": round(last, 1),
            "level_peak_over_warmup_pct": round(100 * (top - start) / start, 1),
            "level_last_over_warmup_pct": round(100 * (last - start) / start, 1),
            "level_flat_within_10pct": top <= 1.1 * start,
            # growth as a trend, not a hump: the median RSS of each quarter of the time after warm-up
            "rss_quarter_medians_mib": [round(q, 1) for q in quarters],
            "last_vs_first_quarter_pct": round(100 * (quarters[3] - quarters[0]) / quarters[0], 1)}


async def reopen(client: SoakClient, args: argparse.Namespace) -> dict:
    from .text_bench import make_prose

    text = make_prose(parse_size(args.size), random.Random(args.seed))
    baseline = await warm_up(client)
    uri = "file:///soak/large.txt"
    open_peaks, after_close, memory = [], [], []
    for cycle in range(1, args.cycles + 1):
        opened_at = time.perf_counter()
        client.open(uri, text)
        await client.wait_covered([uri], args.hold_s)  # (a first result; the rest builds in the background)
        await asyncio.sleep(max(0.0, args.hold_s - (time.perf_counter() - opened_at)))
        client.mark(f"open {cycle}, before closing")
        open_peaks.append(max(s[2] for s in client.samples if s[0] >= client.marks[-2][0]))
        memory.append(await client.memory(uri))
        client.close(uri)
        after_close.append(await client.steady(f"closed {cycle}"))
    return {"figures": {"chars": len(text), "cycles": args.cycles, "hold_s": args.hold_s,
                        "rss_baseline_mib": round(baseline, 1), "rss_open_peak_mib": open_peaks,
                        "rss_after_close_mib": after_close, "memory_before_close": memory,
                        "growth_last_vs_first_close_mib": round(after_close[-1] - after_close[0], 1)},
            "in_sync": None}


async def many(client: SoakClient, args: argparse.Namespace) -> dict:
    from .text_bench import make_prose

    rng = random.Random(args.seed)
    baseline = await warm_up(client)
    uris = [f"file:///soak/many-{i:05d}.txt" for i in range(args.count)]
    for k, uri in enumerate(uris):
        client.open(uri, make_prose(rng.randint(200, 600), rng))
        if k % 100 == 99:
            await asyncio.sleep(0)  # let the transport write
    all_done = await client.wait_covered(uris, args.hold_s)
    opened = await client.steady(f"{args.count} opened" + ("" if all_done else " (not all classified)"))
    synced = await client.in_sync() if len(uris) <= 200 else None
    for uri in uris:
        client.close(uri)
    closed = await client.steady(f"{args.count} closed")
    grown = opened - baseline
    return {"figures": {"count": args.count, "all_classified": all_done, "rss_baseline_mib": round(baseline, 1),
                        "rss_all_open_mib": round(opened, 1), "rss_all_closed_mib": round(closed, 1),
                        "growth_given_back_pct": round(100 * (opened - closed) / grown, 1) if grown > 0 else None},
            "in_sync": synced}


# -- the command ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    client = SoakClient(args)
    await client.start()
    try:
        outcome = await {"soak": soak, "reopen": reopen, "many": many}[args.scenario](client, args)
    finally:
        tracebacks = client.tracebacks()
        await client.stop()
    result = {
        "bench": "soak", "scenario": args.scenario, "model": args.model or "default", "device": args.device,
        "options": client.options, "seed": args.seed, "duration_s": round(client.now(), 1),
        "samples": client.samples, "marks": client.marks, "tracebacks": tracebacks, **outcome,
    }
    print_table(result)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result, args.plot)
    return 0 if outcome["in_sync"] is not False and not tracebacks else 1


def print_table(result: dict) -> None:
    print(f"\nvqlsp bench soak: {result['scenario']}, model {result['model']}, {result['duration_s']} s")
    for name, value in result["figures"].items():
        print(f"  {name:<30} {value}")
    print(f"  {'texts in sync':<30} {result['in_sync']}")
    print(f"  {'tracebacks in stderr':<30} {result['tracebacks']}")
    print("  marks:")
    for t, what in result["marks"]:
        rss = next((s[2] for s in result["samples"] if s[0] >= t), None)
        print(f"    {t:8.1f} s  {rss if rss is None else f'{rss:8,.0f}':>8} MiB  {what}")


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    t = [s[0] for s in result["samples"]]
    ax.plot(t, [s[2] for s in result["samples"]], linewidth=1, label="server RSS")
    if result["scenario"] == "soak":
        lv = levels([(s[0], s[2]) for s in result["samples"]])
        ax.plot([x for x, _ in lv], [v for _, v in lv], linewidth=1.2, color="black",
                label=f"median over {LEVEL_WINDOW_S:.0f} s")
    for when, what in result["marks"]:
        ax.axvline(when, color="grey", linewidth=0.6, linestyle=":")
        ax.annotate(what, (when, ax.get_ylim()[1]), fontsize=6, rotation=90, va="top", ha="right")
    figures = result["figures"]
    if figures.get("rss_at_warmup_mib"):
        ax.axhline(figures["rss_at_warmup_mib"] * 1.1, color="red", linewidth=0.6, label="warm-up sample + 10%")
    if figures.get("rss_level_at_warmup_mib"):
        ax.axhline(figures["rss_level_at_warmup_mib"] * 1.1, color="red", linewidth=0.6, linestyle="--",
                   label="first level after warm-up + 10%")
    if result["scenario"] == "soak":
        top = ax.twiny()
        top.set_xlim(ax.get_xlim())
        ticks = [s for s in result["samples"][:: max(1, len(result["samples"]) // 6)]]
        top.set_xticks([s[0] for s in ticks], [f"{s[1]:,}" for s in ticks], fontsize=7)
        top.set_xlabel("edits sent")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"vqlsp bench soak ({result['scenario']}, model {Path(result['model']).name})", fontsize=9)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
