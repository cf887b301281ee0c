"""A writer types on a clock and never waits: end-to-end tests of what that needs.

* Keystrokes streamed without waiting are all covered, every diagnostic ever
  published shows a sentence the server really classified (never a range on the
  wrong text), and the final result equals a dense forward of the final text's
  sections.
* A keystroke that lands during a settle is answered, and the settle (cut into
  chunks that give way to it) is given up and done again at the next pause.
* A long document is tokenized off the event loop: the server answers while it
  tokenizes, changes sent meanwhile are kept, and every section gets classified.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from vqlsp.text.segments import sentences

from .harness import PROSE, Editor, doc_uri, editor_fixture, sha

editor = editor_fixture(["vscode-utf16"])
KEY_INTERVAL_S = 0.004  # the typist's clock (sending on a schedule is what is tested, not a wait)


async def start(editor: Editor, tiny_model_dir, **options) -> None:
    await editor.initialize({"model": str(tiny_model_dir), "device": "cpu", "debounceMs": 0, **options})


def _dense(tiny_model_dir, text: str, sections) -> dict[str, float]:
    from vqlsp.analysis.reference import dense_document
    from vqlsp.model.registry import load_model, load_tokenizer
    from vqlsp.text.tokenizer import TextTokenizer

    ids = TextTokenizer(load_tokenizer(tiny_model_dir)).encode_ids(text)
    return dense_document(load_model(tiny_model_dir, "cpu"), ids, [tuple(b) for b in sections])


def _range_text(text: str, rng) -> str:
    lines = text.split("\n")
    def offset(pos):
        line = lines[pos.line]
        return sum(len(x) + 1 for x in lines[: pos.line]) + len(line.encode("utf-16-le")[: 2 * pos.character].decode("utf-16-le"))
    return text[offset(rng.start) : offset(rng.end)]


async def test_streamed_keystrokes_are_covered_and_never_mislabelled(editor: Editor, tiny_model_dir):
    await start(editor, tiny_model_dir, sectionTokens=48, positionPolicy="exact", settleMs=0)
    uri = doc_uri("stream.txt")
    editor.open(uri, "\n\n".join([PROSE.strip().replace("👍🏽", "ok")] * 4))
    await editor.until(lambda: next((c for c in editor.client.classifications if c["sections"] == c["sectionsAnalysed"]), None))
    texts = {1: editor.texts[uri]}
    rng = random.Random(7)
    for _ in range(80):  # typing and fixing in three places, one keystroke every few ms
        text = editor.texts[uri]
        where = rng.choice([len(text) // 5, len(text) // 2, len(text) - 1])
        edit = (where, where + 1, "") if rng.random() < 0.25 else (where, where, rng.choice("abc .,"))
        version = editor.change(uri, [edit])
        texts[version] = editor.texts[uri]
        await asyncio.sleep(KEY_INTERVAL_S)
    final = await editor.classification(uri)
    assert final["sections"] == final["sectionsAnalysed"] and final["textHash"] == sha(editor.texts[uri])
    stats = await editor.assert_in_sync(uri)
    assert stats["resultsDropped"] == 0
    # Every keystroke is covered by a result of its version or a later one, and results came
    # while the typing went on (not only at the end).
    versions = sorted({c["version"] for c in editor.client.classifications if c["uri"] == uri})
    assert versions[-1] == editor.versions[uri] and len(versions) > 5
    # No diagnostic ever pointed at text the server had not classified as that sentence.
    classified = {text[s.start : s.end] for t in texts.values() for text in [t] for s in sentences(text)}
    for published in editor.client.published:
        if published.uri == uri and published.version in texts:
            for d in published.diagnostics:
                assert _range_text(texts[published.version], d.range) in classified
    assert final["probabilities"] == pytest.approx(_dense(tiny_model_dir, editor.texts[uri], stats["sections"]), abs=1e-4)


async def test_a_keystroke_during_a_settle_is_answered_and_the_settle_given_up(editor: Editor, tiny_model_dir):
    """A settle rebuilds a drifted section in the background a chunk at a time (the job queue
    runs the typed document's update before the next chunk: ``test_units``); a keystroke
    meanwhile is answered, the settle of the older version is given up, never published, and
    the writer's next pause settles the new text."""
    await start(editor, tiny_model_dir, settleMs=100, sectionTokens=4096)
    uri = doc_uri("settle-typing.txt")
    editor.open(uri, "\n\n".join([PROSE.strip()] * 30))
    await editor.classification(uri, 1)
    for _attempt in range(3):
        middle = len(editor.texts[uri]) // 2
        drifted = editor.change(uri, [(middle, middle, " and more")])
        assert (await editor.classification(uri, drifted))["positionDrift"] > 0
        settles = (await editor.stats(uri))["settlesStarted"]
        deadline = asyncio.get_running_loop().time() + 30
        while (await editor.stats(uri))["settlesStarted"] == settles:  # starts after settleMs of quiet
            assert asyncio.get_running_loop().time() < deadline, "no settle started"
        typed = editor.change(uri, [(middle, middle, "!")])
        got = await editor.classification(uri, typed)
        early = [c for c in editor.client.classifications if c["uri"] == uri and c["version"] == drifted and c["settled"]]
        if early and editor.client.classifications.index(early[0]) < editor.client.classifications.index(got):
            continue  # the settle finished before the keystroke left: try again with a new pause
        assert not got["settled"] and not early
        break
    else:
        pytest.fail("the settle always finished before a keystroke could reach it")
    settled = await editor.until(lambda: next((c for c in editor.client.classifications
                                               if c["uri"] == uri and c["version"] == typed and c["settled"]), None))
    assert settled["positionDrift"] == 0


async def test_a_long_document_is_tokenized_off_the_event_loop(editor: Editor, tiny_model_dir):
    await start(editor, tiny_model_dir, sectionTokens=512, settleMs=0)
    uri = doc_uri("long-open.txt")
    text = "\n\n".join([PROSE.strip()] * 450)
    assert len(text) > 1 << 16  # past LARGE_TEXT_CHARS: tokenized on the text thread
    editor.open(uri, text)
    stats = await editor.stats(uri)  # answered while the text is still being tokenized or built
    assert stats["version"] == 1
    editor.change(uri, [(0, 3, "A")])
    end = len(editor.texts[uri])
    final = editor.change(uri, [(end, end, " The end.")])
    got = await editor.until(lambda: next((c for c in editor.client.classifications if c["uri"] == uri
                                           and c["version"] == final and c["sections"] == c["sectionsAnalysed"]), None), 120)
    stats = await editor.assert_in_sync(uri)
    assert got["sections"] == len(stats["sections"]) > 10 and got["analysedTokens"] == got["tokens"]


async def test_a_replace_all_is_applied_a_slice_at_a_time(editor: Editor, tiny_model_dir):
    """A didChange with hundreds of content changes is applied in slices with the event loop
    free between them (``lsp.changes``); a request sent right after it sees the new text, and
    the result of the new version equals a dense pass over it."""
    await start(editor, tiny_model_dir, sectionTokens=256, settleMs=0, positionPolicy="exact")
    uri = doc_uri("replace-all.txt")
    text = "\n\n".join([PROSE.strip()] * 80)
    editor.open(uri, text)
    await editor.classification(uri, 1)
    word = max(set(text.split()), key=text.split().count)
    starts = [i for i in range(len(text)) if text.startswith(word, i)]
    assert len(starts) > 200  # several slices
    version = editor.change(uri, [(i, i + len(word), "zebra") for i in reversed(starts)])
    stats = await editor.assert_in_sync(uri)  # answered once every change is applied
    assert stats["version"] == version and stats["changesSliced"] == 1
    final = await editor.classification(uri, version)
    assert final["textHash"] == sha(editor.texts[uri])
    settled = await editor.until(lambda: next((c for c in reversed(editor.client.classifications) if c["uri"] == uri
                                               and c["version"] == version and c["sections"] == c["sectionsAnalysed"]
                                               and c["positionDrift"] == 0), None))
    stats = await editor.stats(uri)
    assert settled["probabilities"] == pytest.approx(_dense(tiny_model_dir, editor.texts[uri], stats["sections"]), abs=1e-4)
