"""The real server over stdio, four client profiles (Neovim / VS Code x utf-8 / utf-16 / utf-32).

One scripted session per profile: open -> diagnostics and classification;
incremental edits (ASCII, multi-byte, astral, multi-line, several changes in
one notification) -> results for exactly the version sent; a burst -> fewer
updates than changes and the right final state; hover; stats; close clears.
After every step the server's text hash equals the client's.
"""

from __future__ import annotations

from lsprotocol import types

from .harness import PROFILES, PROSE, SPAN_LABELS, Editor, doc_uri, editor_fixture, sha

editor = editor_fixture(list(PROFILES))


async def test_scripted_session(editor: Editor, tiny_model_dir):
    result = await editor.initialize({"model": str(tiny_model_dir), "device": "cpu", "debounceMs": 5})
    caps = result.capabilities
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert (caps.diagnostic_provider is not None) == editor.pull
    assert "vqlsp.documentStats" in caps.execute_command_provider.commands
    expected = {"neovim-utf8": "utf-8", "neovim-utf16": "utf-16", "vscode-utf16": "utf-16", "vscode-utf32": "utf-32"}
    assert editor.encoding == expected[editor.profile]

    uri = doc_uri(f"{editor.profile}.txt")
    editor.open(uri, PROSE)
    first = await editor.classification(uri, 1)
    assert first["tokens"] > 20 and first["textHash"] == sha(PROSE)
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-5 and first["label"] in first["probabilities"]
    diagnostics = await editor.diagnostics(uri, 1)
    assert len(diagnostics) == 5  # every sentence: the tiny span head says "formal" at ~98%
    footprint = await editor.stats(uri, "vqlsp.documentFootprint")  # what the state budget leaves out
    assert footprint["textBytes"] == sum(footprint["textBytesByPart"].values()) > len(PROSE)
    text = editor.texts[uri]
    for d in diagnostics:
        assert d.source == "vqlsp" and d.severity == types.DiagnosticSeverity.Information
        assert d.data["label"] in SPAN_LABELS and set(d.data["probabilities"]) == set(SPAN_LABELS)
    # Ranges in the client's units: the last sentence ends right after the emoji and the period.
    last = max(diagnostics, key=lambda d: (d.range.end.line, d.range.end.character))
    line = text.split("\n")[last.range.end.line]
    from .harness import units

    assert last.range.end.character == units(line, editor.encoding)
    await editor.assert_in_sync(uri)

    # Incremental edits, each awaited: results for exactly that version.
    script = [
        lambda t: [(0, 3, "A")],  # replace "The"
        lambda t: [(t.index(".") + 1, t.index(".") + 1, " Then it rained 🌧️ hard.")],  # astral + ZWJ-free emoji
        lambda t: [(t.index("日本語") - 3, t.index("日本語") + 4, "Ω≈ç")],  # across multi-byte characters
        lambda t: [(5, 5, "\n\nNew paragraph here. "), (0, 1, "")],  # two changes in one notification
        lambda t: [(t.index("🌧"), t.index("🌧") + 1, "")],  # delete half of a grapheme (a code point)
    ]
    for edits in script:
        version = editor.change(uri, edits(editor.texts[uri]))
        got = await editor.classification(uri, version)
        assert got["textHash"] == sha(editor.texts[uri])
        await editor.diagnostics(uri, version)
        await editor.assert_in_sync(uri)

    # A burst without waiting: fewer updates than changes; the last one is for the final text.
    before = len([c for c in editor.client.classifications if c["uri"] == uri])
    for i in range(20):
        end = len(editor.texts[uri])
        editor.change(uri, [(end, end, "xyz"[i % 3])])
    final = await editor.classification(uri)
    assert final["textHash"] == sha(editor.texts[uri])
    updates = len([c for c in editor.client.classifications if c["uri"] == uri]) - before
    assert 1 <= updates < 20
    stats = await editor.assert_in_sync(uri)
    assert stats["tokens"] == final["tokens"] and stats["current"]

    # Hover anywhere: the document label, the span's label, the last update's cost.
    hover = await editor.client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=2))
    )
    assert final["label"] in hover.contents.value and "This sentence" in hover.contents.value
    assert "Last update" in hover.contents.value

    editor.close(uri)
    if not editor.pull:
        cleared = await editor.until(
            lambda: next((p for p in editor.client.published if p.uri == uri and p.version is None), None)
        )
        assert list(cleared.diagnostics) == []


fuzz_editor = editor_fixture(["neovim-utf8", "vscode-utf16"])


async def test_random_edits_never_drift(fuzz_editor: Editor, tiny_model_dir):
    """150 random edits (inserts, deletes, replacements of mixed-width text, several per
    notification, sent without waiting): the server's text hash equals the client's at every
    checkpoint, and its last result is for the last version."""
    import random

    editor = fuzz_editor
    await editor.initialize({"model": str(tiny_model_dir), "device": "cpu", "debounceMs": 2})
    uri = doc_uri(f"fuzz-{editor.profile}.txt")
    editor.open(uri, PROSE)
    rng = random.Random(7)
    pieces = ["a", "é", "日本", "😀", "👍🏽", " ", "\n", ". ", "\n\n", "word", "Ω≈", "\t"]
    for step in range(150):
        edits = []
        text = editor.texts[uri]
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            start = rng.randint(0, len(text))
            end = min(len(text), start + rng.choice([0, 0, 1, 2, 5]))
            new = "".join(rng.choice(pieces) for _ in range(rng.choice([0, 1, 1, 2])))
            edits.append((start, end, new))
            text = text[:start] + new + text[end:]
        editor.change(uri, edits)
        if step % 50 == 49:
            got = await editor.classification(uri)
            assert got["textHash"] == sha(editor.texts[uri])
            await editor.assert_in_sync(uri)
    assert not [m for m in editor.client.log_messages if m.type == types.MessageType.Error]
