"""Labelled examples for ``vqlsp train-head``: a CSV, TSV or JSONL file, read and checked.

Every problem with the file ends in one ``DataError`` line that names the row
(and the line of the file it ends on), before anything is computed or written:
a missing column, an empty text or label, bytes that are not UTF-8, a label with
a single example (a validation split needs two), fewer than two labels, the same
text under two labels. A file too large to be a labelled set (``max_rows``,
``max_bytes``) is refused while reading its first rows, never read to the end.

Exact duplicates (same text, same label) are kept once, so that no example sits
in both the training and the validation split.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("csv", "tsv", "jsonl")
TEXT_COLUMNS = ("text", "sentence", "message", "content", "body")  # tried in order
LABEL_COLUMNS = ("label", "class", "category", "target", "tag")
MAX_ROWS = 100_000
MAX_BYTES = 256 << 20


class DataError(ValueError):
    """A labelled-data file that cannot be trained on (one line that names the row)."""


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    row: int  # 1-based data row (the header is not a row)
    line: int  # the file's line the row ends on


@dataclass
class LabelledData:
    rows: list[Row]
    labels: list[str]  # sorted
    text_column: str
    label_column: str
    notes: list[str] = field(default_factory=list)  # what was dropped, and why

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rows]

    @property
    def targets(self) -> list[int]:
        index = {label: i for i, label in enumerate(self.labels)}
        return [index[r.label] for r in self.rows]


def data_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix in ("json", "ndjson"):
        return "jsonl"
    raise DataError(f"{path}: cannot tell the format from the name; pass --format {'|'.join(FORMATS)}")


def read_labelled(
    path: str | Path, *, fmt: str | None = None, text_column: str | None = None, label_column: str | None = None,
    max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES, drop_conflicts: bool = False,
) -> LabelledData:
    """The file's examples, checked (see the module docstring); raises ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{path}: {size / 2**20:.0f} MiB is more than a labelled set for a head needs "
                        f"(limit {max_bytes / 2**20:.0f} MiB); train on a sample of it")
    fmt = data_format(path, fmt)
    with path.open("rb") as f:
        lines = _utf8_lines(f, path)
        records = _json_records(lines, path) if fmt == "jsonl" else _csv_records(lines, path, fmt)
        rows, text_column, label_column = _rows(records, path, text_column, label_column, max_rows)
    return _checked(rows, path, text_column, label_column, drop_conflicts)


def _utf8_lines(f, path: Path) -> Iterator[str]:
    """The file's lines, decoded; the first bad byte ends reading with the line it is on."""
    for number, raw in enumerate(f, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} line {number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                            f"{exc.start + 1}); save the file as UTF-8") from None
        if "\x00" in line:
            raise DataError(f"{path} line {number}: a NUL byte (is this a text file?)")
        yield line.removeprefix("\ufeff") if number == 1 else line


class _Lines:
    """Counts the lines a reader took (so that a record can name the line it ends on)."""

    def __init__(self, lines: Iterator[str]):
        self.lines, self.count = lines, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.count += 1
        return line


def _csv_records(lines: Iterator[str], path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line, record)``; the header comes first as a list of column names."""
    counted = _Lines(lines)
    reader = csv.reader(counted, delimiter="\t" if fmt == "tsv" else ",")
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise DataError(f"{path}: empty file (a header row naming the columns comes first)")
        columns = [h.strip() for h in header]
        yield 1, columns  # type: ignore[misc]
        for values in reader:
            if not values:
                continue  # a blank line
            if len(values) != len(columns):
                raise DataError(f"{path} line {counted.count}: {len(values)} fields, the header has {len(columns)}"
                                + (" (a tab-separated file? pass --format tsv)" if fmt == "csv" else ""))
            yield counted.count, dict(zip(columns, values))
    except csv.Error as exc:
        raise DataError(f"{path} line {counted.count}: not valid {fmt.upper()}: {exc}") from None


def _json_records(lines: Iterator[str], path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {number}: not a JSON object: {exc.msg}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path} line {number}: not a JSON object (one object per line)")
        yield number, record


def _pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, path: Path,
          option: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no {what} column {wanted!r} (columns: {', '.join(columns) or 'none'})")
        return wanted
    lower = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise DataError(f"{path}: no {what} column (looked for {', '.join(candidates)}; columns: "
                    f"{', '.join(columns) or 'none'}); name it with {option}")


def _rows(records, path: Path, text_column: str | None, label_column: str | None,
          max_rows: int) -> tuple[list[Row], str, str]:
    rows: list[Row] = []
    columns_known = False
    for line, record in records:
        if isinstance(record, list):  # a CSV header
            text_column = _pick(record, text_column, TEXT_COLUMNS, "text", path, "--text-column")
            label_column = _pick(record, label_column, LABEL_COLUMNS, "label", path, "--label-column")
            columns_known = True
            continue
        n = len(rows) + 1
        if not columns_known:  # JSONL: the first object names the columns
            text_column = _pick(list(record), text_column, TEXT_COLUMNS, "text", path, "--text-column")
            label_column = _pick(list(record), label_column, LABEL_COLUMNS, "label", path, "--label-column")
            columns_known = True
        if n > max_rows:
            raise DataError(f"{path}: more than {max_rows:,} rows (stopped reading at line {line}); a head "
                            "needs a few thousand examples at most: train on a sample (or raise --max-rows)")
        where = f"{path} row {n} (line {line})"
        text, label = record.get(text_column), record.get(label_column)
        if text is None or label is None:
            raise DataError(f"{where}: no {text_column if text is None else label_column!r} field")
        if not isinstance(text, str):
            raise DataError(f"{where}: the text is {type(text).__name__}, not a string")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise DataError(f"{where}: the label is {type(label).__name__}, not a string")
        text, label = text.strip(), str(label).strip()
        if not text:
            raise DataError(f"{where}: the text is empty")
        if not label:
            raise DataError(f"{where}: the label is empty")
        rows.append(Row(text, label, n, line))
    if not columns_known or not rows:
        raise DataError(f"{path}: no examples in the file")
    return rows, text_column, label_column  # type: ignore[return-value]


def _checked(rows: list[Row], path: Path, text_column: str, label_column: str, drop_conflicts: bool) -> LabelledData:
    notes = []
    by_text: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_text[r.text].append(r)
    conflicts = [group for group in by_text.values() if len({r.label for r in group}) > 1]
    if conflicts and not drop_conflicts:
        a = conflicts[0][0]
        b = next(r for r in conflicts[0] if r.label != a.label)
        more = f" (and {len(conflicts) - 1} more such texts)" if len(conflicts) > 1 else ""
        raise DataError(f"{path} rows {a.row} and {b.row} (lines {a.line}, {b.line}): the same text is labelled "
                        f"{a.label!r} and {b.label!r}{more}; fix them, or pass --drop-conflicts to leave them out")
    if conflicts:
        dropped = sum(len(g) for g in conflicts)
        first = ", ".join(f"rows {' and '.join(str(r.row) for r in g[:2])}" for g in conflicts[:3])
        notes.append(f"left out {dropped} rows whose text has conflicting labels ({len(conflicts)} texts: {first}"
                     f"{', ...' if len(conflicts) > 3 else ''})")
    kept = [group[0] for group in by_text.values() if len({r.label for r in group}) == 1]
    duplicates = sum(len(group) - 1 for group in by_text.values() if len({r.label for r in group}) == 1)
    if duplicates:
        notes.append(f"kept one copy of {duplicates} duplicated rows (same text, same label)")
    kept.sort(key=lambda r: r.row)
    counts = Counter(r.label for r in kept)
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise DataError(f"{path}: every row is labelled {only!r}; a head needs at least two labels")
    for label, count in sorted(counts.items()):
        if count < 2:
            row = next(r for r in kept if r.label == label)
            raise DataError(f"{path} row {row.row} (line {row.line}): the label {label!r} has this one example; "
                            "a validation split needs at least two of each label (add examples or drop the row)")
    return LabelledData(kept, sorted(counts), text_column, label_column, notes)
