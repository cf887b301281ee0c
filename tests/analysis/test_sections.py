"""Sections: cutting a document, and keeping the cut in step with its edits (no model).

The invariants the server's results rest on, over random edit sequences with the
real SmolLM2 tokenizer and a tiny section size: sections tile the tokens and the
text and always start at the same place in both; each section's pending edit
batches turn its tokens at the last job into its tokens now; spans of a result
mapped onto the current text show exactly the text they were computed on.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from vqlsp.analysis.results import SectionResult, SpanResult, UpdateCost
from vqlsp.analysis.sections import cut_points
from vqlsp.engine.edits import apply_edits, compose_edits
from vqlsp.lsp.documents import DocumentStore
from vqlsp.text.segments import sentences

WORDS = ["The", "writer", "keeps", "on", "writing.", "A", "model", "reads", "it!", "Why?", "😀", "naïve", "\n", "\n\n"]


def test_cut_points_prefer_paragraphs_and_respect_the_target():
    text = "One two three four.\n\nFive six seven.\n\nEight nine ten eleven twelve thirteen."
    words = [(m, m + len(w)) for m, w in _words(text)]
    starts, ends = [s for s, _ in words], [e for _, e in words]
    cuts = cut_points(text, starts, ends, 8)
    assert sum(t for t, _ in cuts) == len(words) and sum(c for _, c in cuts) == len(text)
    assert all(t <= 8 for t, _ in cuts)
    assert [t for t, _ in cuts] == [7, 6]  # the first two paragraphs fit in 8; the third starts anew
    assert cut_points(text, starts, ends, 100) == [(len(words), len(text))]
    assert cut_points("", [], [], 8) == []
    # One paragraph longer than the target: cut at sentence starts, then anywhere.
    long = "Aa bb. Cc dd. Ee ff gg hh ii jj kk ll mm."
    words = [(m, m + len(w)) for m, w in _words(long)]
    cuts = cut_points(long, [s for s, _ in words], [e for _, e in words], 3)
    assert [t for t, _ in cuts] == [2, 2, 3, 3, 3] and sum(c for _, c in cuts) == len(long)


def test_cut_points_never_cut_inside_markup():
    """A fenced code block with blank lines inside is not a place to cut a Markdown section."""
    code = "```python\n" + "\n\n".join(f"x{i} = {i}" for i in range(12)) + "\n```"
    text = "Intro words here, a few of them.\n\n" + code + "\n\nAfter the code comes prose again."
    words = [(m, m + len(w)) for m, w in _words(text)]
    starts, ends = [s for s, _ in words], [e for _, e in words]
    fence = (text.index("```"), text.rindex("```") + 3)
    for language in ("markdown", "plaintext"):
        cuts, offset = cut_points(text, starts, ends, 40, language), 0  # the block fits in one section
        inside = []
        for _, chars in cuts[:-1]:
            offset += chars
            inside.append(fence[0] < offset < fence[1])
        assert any(inside) == (language == "plaintext")  # plain text knows no fences


def _words(text: str) -> list[tuple[int, str]]:
    import re

    return [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]


@st.composite
def sessions(draw):
    paragraphs = draw(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), min_size=1, max_size=6))
    text = "\n\n".join(" ".join(p) for p in paragraphs)
    steps = draw(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.lists(st.sampled_from(WORDS), max_size=4),
                                     st.integers(1, 3)), min_size=1, max_size=12))
    return text, steps


@pytest.fixture(scope="module")
def store(default_tokenizer):
    from vqlsp.text.tokenizer import TextTokenizer

    store = DocumentStore(PositionCodec(types.PositionEncodingKind.Utf32), section_tokens=8)
    store.set_tokenizer(TextTokenizer(default_tokenizer))
    return store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions())
def test_sections_follow_edits(store, data):
    text, steps = data
    doc = store.open("file:///s.txt", "plaintext", 1, text)
    mirror: dict[int, tuple[int, ...]] = {}  # section id -> its tokens at its last job
    results: dict[int, dict[tuple[int, int], str]] = {}  # section id -> span -> the text it showed
    for version, (where, length, words, changes) in enumerate(steps, start=2):
        content = []
        for i in range(changes):  # several content changes per didChange, each on the text before
            n = len(doc.text.text)
            start = int(where * n) if i == 0 else int(((where + 0.37 * i) % 1) * n)
            end = min(n, start + int(length * 12))
            new = " ".join(words)
            content.append(_change(doc.text.text, start, end, new))
            doc_text = doc.text.text[:start] + new + doc.text.text[end:]
            store.change(doc.uri, version, [content[-1]])
            assert doc.text.text == doc_text
        _check_tiling(doc)
        for k, section in enumerate(doc.sections.sections):
            if version % 2 and k % 2:
                continue  # some sections keep their edits pending across steps
            job = store.job(doc, k, unit="sentence", position_policy="stable")
            if job.batches is not None and section.id in mirror:
                assert tuple(apply_edits(mirror[section.id], compose_edits(len(mirror[section.id]), job.batches))) == job.ids
            mirror[section.id] = job.ids
            spans = tuple(SpanResult(s.start, s.end, "x", {"x": 1.0}) for s in sentences(job.text))
            section.record(SectionResult(section.id, doc.revision, len(job.ids), spans, UpdateCost(False, 0), 0, 0, "t"))
            results[section.id] = {(s.start, s.end): job.text[s.start : s.end] for s in spans}
        # Every mapped span shows the text its result was computed on.
        for span in doc.current_spans():
            assert span.probabilities == {"x": 1.0}
        for section, start in zip(doc.sections.sections, doc.sections.char_starts):
            if section.result is None:
                continue
            for span in section.result.spans:
                moved = section.map_span(span)
                if moved is not None:
                    shown = doc.text.text[start + moved.start : start + moved.end]
                    assert shown == results[section.id][(span.start, span.end)]


def _check_tiling(doc) -> None:
    sections = doc.sections
    assert sections.token_starts[-1] == len(doc.tokens) and sections.char_starts[-1] == len(doc.text.text)
    for k in range(1, len(sections)):
        assert doc.tokens.span(sections.token_starts[k])[0] == sections.char_starts[k]
    assert all(0 < s.tokens <= 2 * sections.target for s in sections.sections)


def _change(text: str, start: int, end: int, new: str) -> types.TextDocumentContentChangePartial:
    def position(offset: int) -> types.Position:
        line = text.count("\n", 0, offset) + text.count("\r", 0, offset) - text.count("\r\n", 0, offset)
        line_start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
        return types.Position(line=line, character=offset - line_start)

    return types.TextDocumentContentChangePartial(range=types.Range(start=position(start), end=position(end)), text=new)
