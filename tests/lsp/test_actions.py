"""Ignore actions, per-label diagnostics, excludePatterns and maxFileLength over real stdio.

The tiny model labels every sentence ``formal`` (p ~ 0.98), so each sentence has a
diagnostic at the default threshold, and what an action silences is exactly what is
missing afterwards. Edits returned by the server are applied the way an editor does
(``apply``) and sent back as ordinary changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path

from .harness import PROSE, Editor, editor_fixture

editor = editor_fixture(["vscode-utf32"])  # code-point positions: offsets are easy to check

TEXTS = {
    "plaintext": ("notes.txt", PROSE),
    "markdown": ("notes.md", "# Minutes\n\n" + PROSE),
    "latex": ("notes.tex", "\\section{Minutes}\n" + PROSE.replace("日本語 ", "")),
    "git-commit": ("COMMIT_EDITMSG", "Approve the budget\n\n" + PROSE + "# Please enter the commit message.\n"),
    "restructuredtext": ("notes.rst", "Minutes\n=======\n\n" + PROSE),
}


async def start(editor: Editor, root: Path, options: dict | None = None) -> None:
    """Initialize with ``root`` as the workspace folder (the client answers the server's
    ``client/registerCapability``, as its capabilities promise; ``editor.registered``)."""
    editor.registered = []

    @editor.client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(params: types.RegistrationParams) -> None:
        editor.registered.extend(params.registrations)

    params = types.InitializeParams(
        capabilities=editor.capabilities, root_uri=from_fs_path(str(root)),
        workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(root)), name="ws")],
        initialization_options={"device": "cpu", "languages": list(TEXTS), **(options or {})},
    )
    result = await editor.client.initialize_session(params)
    editor.encoding = str(result.capabilities.position_encoding or "utf-16")
    assert editor.encoding == "utf-32"


def offset(text: str, position: types.Position) -> int:
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[: position.line]) + position.character


def covered(editor: Editor, uri: str, diagnostics) -> list[str]:
    text = editor.texts[uri]
    return [text[offset(text, d.range.start): offset(text, d.range.end)] for d in diagnostics]


async def settled_diagnostics(editor: Editor, uri: str):
    """Diagnostics once every section of the current version is analysed."""
    version = editor.versions[uri]
    await editor.until(lambda: next((c for c in editor.client.classifications if c["uri"] == uri
                                      and c["version"] == version and c["sections"] == c["sectionsAnalysed"]), None))
    return await editor.diagnostics(uri, version)


def read_code_actions(editor: Editor) -> None:
    """lsprotocol reads any item with a title and a command as a ``Command``; tell a
    ``CodeAction`` (whose ``command`` is an object) from a ``Command`` the way clients do."""
    converter = editor.client.protocol._converter
    converter.register_structure_hook(Union[types.Command, types.CodeAction], lambda obj, _: converter.structure(  # noqa: UP007 (lsprotocol.s own Union)
        obj, types.Command if isinstance(obj.get("command"), str) else types.CodeAction))


async def actions_for(editor: Editor, uri: str, diagnostic: types.Diagnostic) -> list[types.CodeAction]:
    read_code_actions(editor)
    result = await editor.client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=diagnostic.range,
        context=types.CodeActionContext(diagnostics=[diagnostic]),
    ))
    return list(result or [])


def apply(editor: Editor, uri: str, edit: types.WorkspaceEdit) -> int:
    """Apply a WorkspaceEdit to our copy of ``uri`` and send it as a change (a client's job)."""
    if edit.document_changes:
        [change] = edit.document_changes
        assert change.text_document.version == editor.versions[uri]
        edits = change.edits
    else:
        edits = edit.changes[uri]
    text = editor.texts[uri]
    spans = sorted(((offset(text, e.range.start), offset(text, e.range.end), e.new_text) for e in edits), reverse=True)
    return editor.change(uri, spans)  # from the end backwards: earlier offsets stay valid


@pytest.mark.parametrize("language", list(TEXTS))
async def test_ignore_this_sentence_and_this_label_in_the_file(editor: Editor, tiny_model_dir, tmp_path, language):
    await start(editor, tmp_path, {"model": str(tiny_model_dir)})
    name, text = TEXTS[language]
    uri = from_fs_path(str(tmp_path / name))
    editor.open(uri, text, language_id=language)
    before = await settled_diagnostics(editor, uri)
    assert len(before) >= 4
    target = next(d for d in before if "approved the budget" in covered(editor, uri, [d])[0])

    actions = await actions_for(editor, uri, target)
    titles = [a.title for a in actions]
    what = "paragraph" if language == "restructuredtext" else "sentence"
    assert titles == [f"Ignore this {what} (vqlsp)", "Ignore 'formal' in this file (vqlsp)",
                      "Ignore 'formal' in the workspace (.vqlsp.json) (vqlsp)"]
    assert all(a.kind == types.CodeActionKind.QuickFix and [d.range for d in a.diagnostics] == [target.range]
               for a in actions)

    shown = covered(editor, uri, before)
    apply(editor, uri, actions[0].edit)
    after = covered(editor, uri, await settled_diagnostics(editor, uri))
    if language == "restructuredtext":  # the whole first paragraph (its two sentences) is silenced
        assert after == [s for s in shown if s not in ("The committee met on Tuesday.", "It approved the budget for next year!")]
    else:
        assert after == [s for s in shown if s != "It approved the budget for next year!"]
    assert "vqlsp-ignore" in editor.texts[uri]

    # The label in the whole file: a comment at the end; nothing of that label is left.
    actions = await actions_for(editor, uri, (await editor.diagnostics(uri))[0])
    apply(editor, uri, actions[1].edit)
    assert list(await settled_diagnostics(editor, uri)) == []
    assert editor.texts[uri].rstrip().endswith("formal -->" if language in ("plaintext", "markdown") else "formal")


async def test_ignore_a_label_in_the_workspace_survives_a_restart(editor: Editor, tiny_model_dir, tmp_path):
    await start(editor, tmp_path, {"model": str(tiny_model_dir)})
    uri = from_fs_path(str(tmp_path / "notes.md"))
    editor.open(uri, PROSE, language_id="markdown")
    diagnostics = await settled_diagnostics(editor, uri)
    workspace = (await actions_for(editor, uri, diagnostics[0]))[2]
    assert workspace.edit is None and workspace.command.command == "vqlsp.ignoreLabelInWorkspace"
    published = len(editor.client.published)
    result = await editor.client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=workspace.command.command, arguments=workspace.command.arguments))
    assert json.loads((tmp_path / ".vqlsp.json").read_text()) == {"ignoreLabels": ["formal"]}
    assert result["ignored"] is True
    await editor.until(lambda: len(editor.client.published) > published or None)
    assert list(editor.client.published[-1].diagnostics) == []

    # Outside the workspace folder nothing is ignored, and no workspace action is offered.
    outside = "file:///tmp/vqlsp-tests-outside/notes.md"
    editor.open(outside, PROSE, language_id="markdown")
    diagnostics = await settled_diagnostics(editor, outside)
    assert len(diagnostics) == 5
    assert len(await actions_for(editor, outside, diagnostics[0])) == 2


async def test_workspace_ignores_are_read_at_start_up_and_when_the_file_changes(editor: Editor, tiny_model_dir, tmp_path):
    (tmp_path / ".vqlsp.json").write_text('{"ignoreLabels": ["casual", "formal"], "other": 1}')
    await start(editor, tmp_path, {"model": str(tiny_model_dir)})
    uri = from_fs_path(str(tmp_path / "notes.md"))
    editor.open(uri, PROSE, language_id="markdown")
    assert list(await settled_diagnostics(editor, uri)) == []
    hover = await editor.client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=3)))
    assert "label ignored in the workspace (.vqlsp.json)" in hover.contents.value

    # The server asked to hear of .vqlsp.json; edited by hand, it is read again.
    [registration] = editor.registered
    assert registration.method == "workspace/didChangeWatchedFiles"
    assert [w["globPattern"] for w in registration.register_options["watchers"]] == ["**/.vqlsp.json"]
    (tmp_path / ".vqlsp.json").write_text('{"ignoreLabels": []}')
    published = len(editor.client.published)
    editor.client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[types.FileEvent(
        uri=from_fs_path(str(tmp_path / ".vqlsp.json")), type=types.FileChangeType.Changed)]))
    await editor.until(lambda: len(editor.client.published) > published or None)
    assert len(editor.client.published[-1].diagnostics) == 5


async def test_a_broken_ignore_file_is_reported_once(editor: Editor, tiny_model_dir, tmp_path):
    (tmp_path / ".vqlsp.json").write_text("{not json")
    await start(editor, tmp_path, {"model": str(tiny_model_dir)})
    await editor.until(lambda: next((m for m in editor.client.messages if ".vqlsp.json" in m.message), None))
    uri = from_fs_path(str(tmp_path / "notes.md"))
    editor.open(uri, PROSE, language_id="markdown")
    assert len(await settled_diagnostics(editor, uri)) == 5


async def test_per_label_severity_and_threshold(editor: Editor, tiny_model_dir, tmp_path):
    # Only `formal`, as warnings: everything else off.
    await start(editor, tmp_path, {"model": str(tiny_model_dir), "diagnostics": {
        "severity": "off", "labels": {"formal": {"severity": "warning"}}}})
    uri = from_fs_path(str(tmp_path / "notes.txt"))
    editor.open(uri, PROSE, language_id="plaintext")
    diagnostics = await settled_diagnostics(editor, uri)
    assert len(diagnostics) == 5 and {d.severity for d in diagnostics} == {types.DiagnosticSeverity.Warning}

    # Hover explains the span's label: every probability, the rule, the compute saved.
    editor.change(uri, [(0, 3, "The")])  # an edit, so the last update reused the cached state
    await settled_diagnostics(editor, uri)
    hover = await editor.client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=5)))
    value = hover.contents.value
    assert "| sentence label | probability |" in value and "| formal |" in value and "| casual |" in value
    assert "diagnostic: warning" in value and "compute saved:" in value

    # A per-label threshold nobody reaches, then a label switched off: no diagnostics.
    for rule in ({"threshold": 0.9999}, {"severity": "off"}):
        published = len(editor.client.published)
        editor.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={"vqlsp": {"diagnostics": {"labels": {"formal": rule}}}}))
        await editor.until(lambda published=published: len(editor.client.published) > published or None)
        assert list(editor.client.published[-1].diagnostics) == []


async def test_exclude_patterns_and_max_file_length(editor: Editor, tiny_model_dir, tmp_path):
    await start(editor, tmp_path, {"model": str(tiny_model_dir), "excludePatterns": ["drafts/"],
                                    "maxFileLength": 400})
    draft = from_fs_path(str(tmp_path / "drafts" / "notes.md"))
    editor.open(draft, PROSE, language_id="markdown")
    await editor.until(lambda: next((m for m in editor.client.log_messages if "excludePatterns" in m.message), None))

    # Over maxFileLength: one message, however much is typed; under it again: analysed.
    uri = from_fs_path(str(tmp_path / "long.md"))
    editor.open(uri, PROSE * 3, language_id="markdown")
    await editor.until(lambda: next((m for m in editor.client.messages if "maxFileLength" in m.message), None))
    for _ in range(3):
        editor.change(uri, [(0, 0, "More. ")])
    editor.change(uri, [(0, len(editor.texts[uri]), PROSE)])
    assert len(await settled_diagnostics(editor, uri)) == 5
    editor.change(uri, [(len(PROSE), len(PROSE), PROSE * 2)])  # over it again: cleared
    await editor.until(lambda: next((p for p in editor.client.published if p.uri == uri
                                     and p.version == editor.versions[uri] and not p.diagnostics), None))
    assert sum("maxFileLength" in m.message for m in editor.client.messages) == 1
    assert not any(c["uri"] == draft for c in editor.client.classifications)
    assert not any(p.uri == draft and p.diagnostics for p in editor.client.published)


async def test_several_diagnostics_in_one_request_name_their_sentences(editor: Editor, tiny_model_dir, tmp_path):
    # What Neovim sends: every diagnostic of the cursor's line.
    await start(editor, tmp_path, {"model": str(tiny_model_dir)})
    uri = from_fs_path(str(tmp_path / "notes.md"))
    editor.open(uri, PROSE, language_id="markdown")
    first_line = [d for d in await settled_diagnostics(editor, uri) if d.range.start.line == 0]
    assert len(first_line) == 2
    read_code_actions(editor)
    actions = await editor.client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=first_line[0].range,
        context=types.CodeActionContext(diagnostics=first_line)))
    assert [a.title for a in actions] == [
        "Ignore this sentence (vqlsp): \u201cThe committee met on Tuesday.\u201d",
        "Ignore this sentence (vqlsp): \u201cIt approved the budget for next\u2026\u201d",
        "Ignore 'formal' in this file (vqlsp)",
        "Ignore 'formal' in the workspace (.vqlsp.json) (vqlsp)",
    ]
    assert [len(a.diagnostics) for a in actions] == [1, 1, 2, 2]
