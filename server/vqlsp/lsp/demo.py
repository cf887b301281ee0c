"""``vqlsp demo``: the real server over stdio, a sample document, a scripted editing session.

The script (``samples/article.edits.json`` by default) is a list of steps;
each step is one of::

    {"replace": "old text", "with": "new text"}     one change
    {"delete": "text"}                              one change
    {"type": "text", "after": "anchor" | "at": "end"}   one change per character (a burst)

After every step the demo waits for the classification of the last version it
sent and prints the label, the top probabilities, the tokens the update
changed, the share of (row, layer) work reused from the cache, the server's
compute time and the latency the client saw (send -> notification). A typed
burst shows how many updates the server actually ran for its keystrokes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from .client import StdioSession

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DEFAULT_SCRIPT = SAMPLES / "article.edits.json"


class ScriptError(ValueError):
    """The edit script does not fit its document."""


def _find(text: str, needle: str) -> int:
    at = text.find(needle)
    if at < 0:
        raise ScriptError(f"edit script: {needle[:40]!r} is not in the document")
    return at


def plan_step(text: str, step: dict) -> list[tuple[int, int, str]]:
    """A step -> code-point changes, each relative to the text after the previous one."""
    if "replace" in step:
        at = _find(text, step["replace"])
        return [(at, at + len(step["replace"]), step["with"])]
    if "delete" in step:
        at = _find(text, step["delete"])
        return [(at, at + len(step["delete"]), "")]
    if "type" in step:
        at = len(text) if step.get("at") == "end" else _find(text, step["after"]) + len(step["after"])
        return [(at + i, at + i, ch) for i, ch in enumerate(step["type"])]
    raise ScriptError(f"edit script: unknown step {step}")


def _top(probabilities: dict[str, float], k: int = 3) -> str:
    best = sorted(probabilities.items(), key=lambda kv: -kv[1])[:k]
    return " ".join(f"{label} {p:.0%}" for label, p in best)


async def replay(args: argparse.Namespace) -> int:
    script_path = Path(args.script) if args.script else DEFAULT_SCRIPT
    script = json.loads(script_path.read_text())
    doc_path = Path(args.file) if args.file else script_path.parent / script["document"]
    text = doc_path.read_text()
    session = StdioSession()
    options = {"model": args.model, "device": args.device, "debounceMs": args.debounce_ms}
    started = time.perf_counter()
    await session.start(options)
    try:
        sent = session.open(text, script.get("language", "plaintext"))
        arrived, first = await session.classification(1)
        if not args.json:
            print(f"opened {doc_path.name}: {first['tokens']} tokens, server up and first pass in "
                  f"{arrived - started:.1f} s (first pass {first['ms']:.0f} ms, {first['engine']} engine)")
            print(f"  label {first['label']}: {_top(first['probabilities'])}\n")
            print(f"{'#':>2}  {'edit':<44} {'label':<14} {'probabilities':<34} {'changed':>7} "
                  f"{'reused':>7} {'server':>9} {'latency':>9}")
        else:
            print(json.dumps({"step": 0, "edit": "open", **first, "latency_ms": (arrived - sent) * 1e3}))
        for n, step in enumerate(script["steps"], 1):
            changes = plan_step(session.text, step)
            for i, change in enumerate(changes):
                if i:  # a typist's pace between keystrokes (simulated time, not synchronisation)
                    await asyncio.sleep(args.typing_ms / 1000)
                sent = session.change(*change)
            arrived, got = await session.classification(session.version)
            updates = sum(1 for v in session.classifications if v > session.version - len(changes))
            latency = (arrived - sent) * 1e3
            if args.json:
                print(json.dumps({"step": n, "edit": step.get("say", ""), "changes": len(changes),
                                  "updates": updates, **got, "latency_ms": latency}))
                continue
            what = step.get("say", "")[:44]
            if len(changes) > 1:
                what = f"{what[:28]} ({len(changes)} keys, {updates} shown)"
            print(f"{n:>2}  {what:<44} {got['label']:<14} {_top(got['probabilities']):<34} "
                  f"{got['changedTokens']:>7} {got['reused_fraction']:>7.1%} {got['ms']:>7.1f}ms {latency:>7.1f}ms")
        stats = await session.stats()
        if not args.json:
            settles = stats["settlesStarted"]
            print(f"\nserver text == client text: {_same(session, stats)}; "
                  f"{stats['tokens']} tokens, state {stats.get('state_bytes', 0) / 2**20:.1f} MiB, "
                  f"{stats['updatesStarted']} updates for {session.version - 1} changes"
                  + (f" ({settles} of them settled positions after a pause)" if settles else ""))
    finally:
        await session.stop()
    return 0


def _same(session: StdioSession, stats: dict) -> bool:
    import hashlib

    return stats["textHash"] == hashlib.sha256(session.text.encode("utf-8")).hexdigest()


def run_demo(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(replay(args))
    except (ScriptError, json.JSONDecodeError) as exc:
        print(f"vqlsp: error: {exc}", file=sys.stderr)
        return 2
