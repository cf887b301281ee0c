"""``vqlsp bench text``: what one keystroke costs the text layer, at several document sizes.

For each size, a synthetic prose document is tokenized once, then a writer
types a sentence in its middle, one character per change with a backspace now
and then; each ``TokenizedDocument.apply_change`` is timed. The point is that
the cost does not grow with the document, so the sizes differ by 10x and 100x
and the medians should not. For contrast, one full re-tokenization of the
same document is timed too. At the end the document's ids are checked against
a from-scratch tokenization, so a fast wrong answer cannot pass.

JSON (``--json PATH``)::

    {"tokenizer": ..., "keystrokes": N,
     "sizes": {"1000": {"median_ms": .., "p95_ms": .., "max_ms": .., "chars": ..,
                        "tokens": .., "final_chars": .., "full_encode_ms": ..,
                        "mean_changed_tokens": .., "max_changed_tokens": ..}, ...}}

Sizes and token counts are those of the document before typing. Times are
wall-clock; on a shared machine the maximum mostly measures the scheduler
(a preempted keystroke), so compare medians and p95s.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path

from vqlsp.text.document import TokenizedDocument
from vqlsp.text.tokenizer import TextTokenizer

_VOCABULARY = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will more about up out can what said other into than its time only could new "
    "writer sentence paragraph language server keystroke token classify prose draft revise "
    "incremental quantized attention model document edit window cost meaning argument "
    "café naïve résumé 日本語 Ünïcödé"
)
_WORDS = _VOCABULARY.split()
_TYPED = "Then the writer added one more careful sentence, about 42 things. "


def make_prose(chars: int, rng: random.Random) -> str:
    """Deterministic prose-like text of exactly ``chars`` code points."""
    parts: list[str] = []
    length = 0
    while length < chars:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        if rng.random() < 0.05:
            words.append("👍🏽")
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", ",", "?", "!", ";"])
        sentence += "\n\n" if rng.random() < 0.15 else " "
        parts.append(sentence)
        length += len(sentence)
    return "".join(parts)[:chars]


def bench_size(
    tokenizer: TextTokenizer, chars: int, keystrokes: int, rng: random.Random
) -> dict[str, float | int]:
    text = make_prose(chars, rng)
    doc = TokenizedDocument(text, tokenizer)
    tokens = len(doc)
    cursor = chars // 2
    durations: list[int] = []
    changed: list[int] = []
    for i in range(keystrokes + 10):  # the first ten warm up
        if i % 13 == 12 and cursor > 0:
            change = (cursor - 1, cursor, "")
            cursor -= 1
        else:
            change = (cursor, cursor, _TYPED[i % len(_TYPED)])
            cursor += 1
        began = time.perf_counter_ns()
        edits = doc.apply_change(*change)
        elapsed = time.perf_counter_ns() - began
        if i >= 10:
            durations.append(elapsed)
            changed.append(sum(e.end - e.start + len(e.new_ids) for e in edits))
    final = doc.text
    began = time.perf_counter_ns()
    expected = tokenizer.encode_ids(final)
    full_ns = time.perf_counter_ns() - began
    if doc.ids != expected:
        raise AssertionError(f"{chars} chars: incremental ids differ from a fresh tokenization")
    ms = [d / 1e6 for d in durations]
    return {
        "chars": chars,
        "tokens": tokens,
        "final_chars": len(final),
        "median_ms": statistics.median(ms),
        "p95_ms": statistics.quantiles(ms, n=20)[18],
        "max_ms": max(ms),
        "full_encode_ms": full_ns / 1e6,
        "mean_changed_tokens": statistics.fmean(changed),
        "max_changed_tokens": max(changed),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1_000, 10_000, 100_000],
        help="document sizes in characters, comma-separated (default: 1000,10000,100000)",
    )
    parser.add_argument(
        "--keystrokes", type=int, default=2000, help="timed keystrokes per size (default: 2000)"
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="tokenizer.json to use (default: the default model's, SmolLM2-135M)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the synthetic text")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write results here"
    )


def run(args: argparse.Namespace) -> int:
    if args.tokenizer is None:
        from vqlsp.model.base_weights import BaseModelMissing, default_tokenizer_path

        try:
            path = default_tokenizer_path()
        except BaseModelMissing as error:
            print(f"vqlsp bench text: {error} (or pass --tokenizer PATH)", file=sys.stderr)
            return 2
    else:
        path = args.tokenizer
    tokenizer = TextTokenizer.from_file(path)
    print(f"text bench: {args.keystrokes} keystrokes typed mid-document, tokenizer {path}")
    header = f"{'chars':>8} {'tokens':>7} {'median_ms':>10} {'p95_ms':>8} {'max_ms':>8} {'full_encode_ms':>15} {'changed_tokens(mean/max)':>25}"
    print(header)
    results: dict[str, dict[str, float | int]] = {}
    for chars in args.sizes:
        gc.collect()
        r = bench_size(tokenizer, chars, args.keystrokes, random.Random(args.seed))
        results[str(chars)] = r
        print(
            f"{r['chars']:>8} {r['tokens']:>7} {r['median_ms']:>10.4f} {r['p95_ms']:>8.4f} "
            f"{r['max_ms']:>8.3f} {r['full_encode_ms']:>15.2f} "
            f"{r['mean_changed_tokens']:>19.2f}/{r['max_changed_tokens']}"
        )
    if args.json is not None:
        report = {"tokenizer": str(path), "keystrokes": args.keystrokes, "sizes": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run without the CLI: ``python -m vqlsp.bench.text_bench``."""
    parser = argparse.ArgumentParser(prog="vqlsp bench text", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
