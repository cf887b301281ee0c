"""Configuration end to end: initializationOptions, didChangeConfiguration (pushed and pulled),
bad options, languages, the memory budget, progress while the model loads."""

from __future__ import annotations

import pytest
from lsprotocol import types

from .harness import PROSE, Editor, doc_uri, editor_fixture, sha

editor = editor_fixture(["vscode-utf16", "neovim-utf16"])


def logged(editor: Editor, needle: str):
    return lambda: next((m for m in editor.client.log_messages if needle in m.message), None)


def options_changes(editor: Editor) -> int:
    return sum("options changed" in m.message for m in editor.client.log_messages)


async def pull(editor: Editor, uri: str, previous: str | None = None):
    return await editor.client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri), previous_result_id=previous)
    )


def change_config(editor: Editor, settings) -> None:
    editor.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))


async def test_configuration_changes_take_effect(editor: Editor, tiny_model_dir):
    # workspace/configuration is pulled after `initialized`; it overrides initializationOptions.
    editor.client.set_configuration({"diagnostics": {"severity": "hint"}}, section="vqlsp")
    await editor.initialize({"model": str(tiny_model_dir), "debounceMs": 0, "bogusKey": 1, "device": "tpu"})
    await editor.until(lambda: next((m for m in editor.client.messages if "bogusKey" in m.message), None))
    assert any("'device'" in m.message for m in editor.client.messages)
    uri = doc_uri(f"config-{editor.profile}.txt")
    editor.open(uri, PROSE)
    await editor.classification(uri, 1)
    # Progress was reported while the model loaded (begin ... end, before any result).
    kinds = [r.kind for reports in editor.client.progress_reports.values() for r in reports]
    assert kinds[:2] == ["begin", "end"]
    diagnostics = await editor.diagnostics(uri, 1)
    assert len(diagnostics) == 5 and {d.severity for d in diagnostics} == {types.DiagnosticSeverity.Hint}

    # Pushed settings: a threshold nobody reaches clears the diagnostics without a text change.
    published = len(editor.client.published)
    change_config(editor, {"vqlsp": {"diagnostics": {"threshold": 0.999}}})
    if editor.pull:  # (this Neovim profile has no refresh support: the next pull sees it)
        await editor.until(logged(editor, "diagnostics.threshold"))
        assert list(await editor.diagnostics(uri)) == []
    else:
        await editor.until(lambda: len(editor.client.published) > published or None)
        assert list(editor.client.published[-1].diagnostics) == [] and editor.client.published[-1].version == 1

    # Settings without a payload: the server pulls workspace/configuration again.
    editor.client.set_configuration({"diagnostics": {"threshold": 0.5, "severity": "warning"}}, section="vqlsp")
    applied, published = options_changes(editor), len(editor.client.published)
    change_config(editor, None)
    if editor.pull:
        await editor.until(lambda: options_changes(editor) > applied or None)
    else:
        await editor.until(lambda: len(editor.client.published) > published or None)
    diagnostics = await editor.diagnostics(uri)
    assert len(diagnostics) == 5 and {d.severity for d in diagnostics} == {types.DiagnosticSeverity.Warning}

    # Paragraphs instead of sentences: re-analysed, two spans.
    change_config(editor, {"diagnostics": {"threshold": 0.5, "severity": "warning", "unit": "paragraph"}})
    await editor.until(lambda: sum(c["uri"] == uri for c in editor.client.classifications) >= 2 or None)
    stats = await editor.stats(uri)
    assert len(stats["span_labels"]) == 2

    # Invalid values are reported once and replaced by defaults; the server keeps serving.
    change_config(editor, {"debounceMs": "fast", "languages": "plaintext"})
    await editor.until(lambda: next((m for m in editor.client.messages if "debounceMs" in m.message), None))
    editor.change(uri, [(0, 0, "Still here. ")])
    assert (await editor.classification(uri))["textHash"] == sha(editor.texts[uri])


async def test_languages_and_position_policy(editor: Editor, tiny_model_dir):
    await editor.initialize({"model": str(tiny_model_dir), "debounceMs": 0, "languages": ["markdown"]})
    code = doc_uri("script.py")
    notes = doc_uri("notes.md")
    editor.open(code, "print('hello')\n", language_id="python")
    editor.open(notes, PROSE, language_id="markdown")
    await editor.classification(notes, 1)
    assert not any(c["uri"] == code for c in editor.client.classifications)
    # Adding python starts analysing it; "exact" positions rebuild every state (a full pass).
    change_config(editor, {"languages": ["markdown", "python"], "positionPolicy": "exact"})
    got = await editor.classification(code, 1)
    assert got["fullPass"]
    again = await editor.until(
        lambda: [c for c in editor.client.classifications if c["uri"] == notes][1:] or None
    )
    assert again[0]["fullPass"] and again[0]["textHash"] == sha(PROSE)


async def test_a_pause_settles_drifted_positions(editor: Editor, tiny_model_dir):
    """Under ``stable`` an insertion leaves position ids that are not 0..n-1; once the writer
    pauses for settleMs the server re-indexes them and publishes what a fresh pass gives."""
    await editor.initialize({"model": str(tiny_model_dir), "debounceMs": 0, "settleMs": 1000})
    uri, twin = doc_uri("settle.txt"), doc_uri("settle-twin.txt")
    editor.open(uri, PROSE)
    opened = await editor.classification(uri, 1)
    assert opened["positionDrift"] == 0 and not opened["settled"]
    version = editor.change(uri, [(10, 10, " and a good many more words")])

    def of_version(settled: bool):
        return lambda: next((c for c in editor.client.classifications
                             if c["uri"] == uri and c["version"] == version and c["settled"] == settled), None)

    drifted = await editor.until(of_version(False))
    assert drifted["positionDrift"] > 0
    before = await pull(editor, uri) if editor.pull else None  # well within the second's pause
    settled = await editor.until(of_version(True))
    assert settled["positionDrift"] == 0 and settled["textHash"] == sha(editor.texts[uri])
    # A settle builds the drifted section afresh on exact ids: a full pass, no token changed.
    assert settled["fullPass"] and settled["changedTokens"] == 0
    editor.open(twin, editor.texts[uri])
    fresh = await editor.classification(twin, 1)
    assert fresh["positionDrift"] == 0
    assert settled["probabilities"] == pytest.approx(fresh["probabilities"], abs=1e-5)

    def spans(diagnostics):
        return [(d.range, d.data["label"]) for d in diagnostics], [d.data["probability"] for d in diagnostics]

    (where, p), (fresh_where, fresh_p) = spans(await editor.diagnostics(uri, version)), spans(await editor.diagnostics(twin, 1))
    assert where == fresh_where and p == pytest.approx(fresh_p, abs=1e-5)
    if before is not None:  # same version, new results: a pull that names the old result gets them in full
        after = await pull(editor, uri, before.result_id)
        assert after.kind == "full" and after.result_id != before.result_id and spans(after.items) == spans(
            await editor.diagnostics(uri, version))
    # Settled once: nothing more for this version while the text stays as it is.
    assert (await editor.stats(uri))["settlesStarted"] == 1  # the twin opened at exact ids: nothing to settle
    assert sum(c["uri"] == uri and c["version"] == version for c in editor.client.classifications) == 2


async def test_memory_budget_evicts_and_rebuilds(editor: Editor, tiny_model_dir):
    # A state is ~170 KB with the tiny model (buffers for 64 rows), so a 30 KB budget keeps
    # only the document updated last (never the one being updated).
    await editor.initialize({"model": str(tiny_model_dir), "debounceMs": 0, "memoryBudgetMb": 0.03})
    uris = [doc_uri(f"budget-{i}.txt") for i in range(3)]
    for uri in uris:
        editor.open(uri, PROSE)
        await editor.classification(uri, 1)
    stats = await editor.stats(uris[-1])
    assert stats["evictions"] >= 2 and stats["cached"]
    assert stats["total_state_bytes"] == stats["state_bytes"] > 0
    first = await editor.stats(uris[0])
    assert not first["cached"]
    # The evicted document is rebuilt by a full pass on its next change, with correct results.
    editor.change(uris[0], [(0, 0, "Again. ")])
    got = await editor.classification(uris[0])
    assert got["fullPass"] and got["textHash"] == sha(editor.texts[uris[0]])
    # A cached one is updated incrementally.
    editor.change(uris[0], [(0, 0, "More. ")])
    got = await editor.classification(uris[0])
    assert not got["fullPass"] and got["reused_fraction"] > 0


async def test_model_change_bad_then_good_and_large_document_progress(editor: Editor, tiny_model_dir, tmp_path):
    await editor.initialize({"model": str(tiny_model_dir), "debounceMs": 0})
    uri = doc_uri("large.txt")
    text = PROSE * 30  # > 1024 tokens: the first full pass reports progress
    editor.open(uri, text)
    got = await editor.classification(uri, 1)
    assert got["tokens"] > 1024
    titles = [r.title for reports in editor.client.progress_reports.values() for r in reports if r.kind == "begin"]
    assert any("analysing large.txt" in t for t in titles), titles
    # A checkpoint directory that does not exist: an error shown once, the old model keeps serving.
    change_config(editor, {"model": str(tmp_path / "missing")})
    await editor.until(lambda: next((m for m in editor.client.messages if "cannot load the model" in m.message), None))
    editor.change(uri, [(0, 0, "Still served. ")])
    assert (await editor.classification(uri))["textHash"] == sha(editor.texts[uri])
    # Back to a good one: every document is re-tokenized and gets a full pass.
    change_config(editor, {"model": str(tiny_model_dir)})
    again = await editor.until(
        lambda: next((c for c in editor.client.classifications if c["uri"] == uri and c["version"] == 2
                      and c["fullPass"]), None)
    )
    assert again["textHash"] == sha(editor.texts[uri])
