"""``vqlsp bench memory``: what a long document's text structures hold, outside the state budget.

The memory budget (``memoryBudgetMb``) counts the engine's section states only. A
document's own structures come on top: its text (the didOpen message's string, the
line index's chunks, the token store's chunks), the token store's ids, spans and word
starts, the line index's line starts and the section records. This benchmark opens a
document of each ``--sizes`` in a ``DocumentStore`` the way the server does (a long
text tokenized and cut by ``tokenize_and_cut``, then attached) and reports, per size:

* per structure, the bytes ``tracemalloc`` sees it allocate and keep (built one after
  another, so each one's share is the growth it leaves behind);
* the peak while tokenizing and cutting (what the build holds for a moment: the whole
  text's token lists before they are split into chunks, the cut's starts and ends);
* ``text_bytes``: what the server reports as ``textBytes`` in ``vqlsp.documentFootprint``
  (``lsp.footprint.document_bytes``), to check it against the above;
* the process's RSS growth, measured in a second child without ``tracemalloc`` (its
  own bookkeeping would inflate RSS).

Each size runs in fresh child processes, so one measurement's freed memory does not
hide in the next one's. No model is loaded: only its tokenizer. What the server holds
per analysed section (results, diagnostics) and the states themselves are measured over
the real server by ``vqlsp bench soak --scenario reopen`` (``textBytes``,
``total_state_bytes``).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import random
import sys
import time
import tracemalloc
from pathlib import Path

MIB = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="2MB,10MB", help="document sizes, comma-separated (default 2MB,10MB)")
    parser.add_argument("--text", choices=("prose", "bbc"), default="prose",
                        help="synthetic prose (as the soak benchmark sends) or BBC articles (default prose)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", type=Path, help="write the results here")


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _text(kind: str, chars: int, seed: int, tokenizer) -> str:
    if kind == "bbc":
        from .typing_traces import DocSize, bbc_text

        return bbc_text(tokenizer, DocSize(f"{chars}", bytes=chars), seed)
    from .text_bench import make_prose

    return make_prose(chars, random.Random(seed))


def _open(text: str, tokenizer):
    """A ``DocumentStore`` holding ``text`` as the server does for a long one: the line index
    and the tokens built apart (in the server, off the event loop), then attached."""
    from pygls.workspace.position_codec import PositionCodec

    from vqlsp.lsp.documents import DocumentStore, tokenize_and_cut
    from vqlsp.text.positions import LineIndex

    store = DocumentStore(PositionCodec())
    store.tokenizer = tokenizer
    steps: dict[str, int] = {}

    def step(name: str) -> None:
        steps[name] = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else rss_bytes()

    step("start")
    index = LineIndex(text)
    step("line index")
    doc = store.open("file:///bench/long.txt", "plaintext", 1, text, index=index)
    step("document record")
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    tokens, lengths = tokenize_and_cut(doc.text.text, tokenizer, store.section_tokens, doc.language_id)
    peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    step("tokens")
    store.attach(doc, doc.tokenizing, tokens, lengths)
    del tokens, lengths
    gc.collect()
    step("sections")
    return store, doc, steps, peak


def _measure(kind: str, chars: int, seed: int, traced: bool, out) -> None:
    from vqlsp.lsp.footprint import document_bytes
    from vqlsp.model.base_weights import default_tokenizer_path
    from vqlsp.text.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.from_file(default_tokenizer_path())
    text = _text(kind, chars, seed, tokenizer)
    gc.collect()
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    store, doc, steps, peak = _open(text, tokenizer)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    counted = document_bytes(doc)["total"]
    count_s = time.perf_counter() - t0
    names = list(steps)
    grown = {b: steps[b] - steps[a] for a, b in zip(names, names[1:])}
    out.put({"chars": len(text), "tokens": doc.n_tokens, "sections": len(doc.sections or ()),
             "text_str_bytes": sys.getsizeof(text), "grown": grown, "held": steps[names[-1]] - steps["start"],
             "peak_above_start": peak - steps["start"] if traced else None,
             "text_bytes": counted, "text_bytes_s": round(count_s, 3), "open_s": round(seconds, 2)})


def measure(kind: str, chars: int, seed: int, traced: bool) -> dict:
    """One measurement in a fresh child process."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=_measure, args=(kind, chars, seed, traced, out))
    child.start()
    result = out.get()
    child.join()
    return result


def run(args: argparse.Namespace) -> int:
    from .soak_bench import parse_size

    results = []
    for size in args.sizes.split(","):
        chars = parse_size(size)
        traced = measure(args.text, chars, args.seed, traced=True)
        rss = measure(args.text, chars, args.seed, traced=False)
        results.append({"size": size, **traced, "rss_grown": rss["grown"], "rss_held": rss["held"],
                        "open_s_untraced": rss["open_s"], "text_bytes_s_untraced": rss["text_bytes_s"]})
        print_table(results[-1])
    if args.json_path:
        args.json_path.write_text(json.dumps({"bench": "memory", "text": args.text, "results": results}, indent=1))
    return 0


def print_table(r: dict) -> None:
    print(f"\n{r['size']} ({r['chars']:,} characters, {r['tokens']:,} tokens, {r['sections']:,} sections): "
          f"opened in {r['open_s_untraced']} s")
    print(f"  {'structure':<20} {'traced MiB':>11} {'RSS MiB':>9}")
    print(f"  {'the text (str)':<20} {r['text_str_bytes'] / MIB:11.1f} {'':>9}")
    for name, grown in r["grown"].items():
        print(f"  {name:<20} {grown / MIB:11.1f} {r['rss_grown'][name] / MIB:9.1f}")
    print(f"  {'held in all':<20} {r['held'] / MIB:11.1f} {r['rss_held'] / MIB:9.1f}")
    print(f"  {'peak while building':<20} {r['peak_above_start'] / MIB:11.1f}")
    print(f"  {'textBytes (counted)':<20} {r['text_bytes'] / MIB:11.1f}   (counted in {r['text_bytes_s_untraced']} s)")
