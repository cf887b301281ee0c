"""Code actions on vqlsp diagnostics: ignore this sentence, this label in the file, this label
in the workspace.

The first two are ``WorkspaceEdit``s that insert an ignore comment in the document's own
comment syntax (``vqlsp.text.ignores``), so they live with the text, survive restarts and
travel with the file. The third runs the server command ``vqlsp.ignoreLabelInWorkspace``,
which adds the label to ``.vqlsp.json`` at the root of the document's workspace folder
(``ignore_file``); it is offered only for documents inside a workspace folder.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from vqlsp.text.ignores import insert_label_ignore, insert_sentence_ignore, syntax

from .diagnostics import SOURCE
from .documents import Document
from .ignore_file import IGNORE_FILE

IGNORE_IN_WORKSPACE_COMMAND = "vqlsp.ignoreLabelInWorkspace"


def diagnostic_label(diagnostic: types.Diagnostic) -> str | None:
    """The span label a vqlsp diagnostic reports (its ``data.label``, else its ``code``)."""
    if diagnostic.source != SOURCE:
        return None
    data = diagnostic.data
    if isinstance(data, dict) and isinstance(data.get("label"), str):
        return data["label"]
    return diagnostic.code if isinstance(diagnostic.code, str) else None


def code_actions(
    doc: Document, codec: PositionCodec, diagnostics: list[types.Diagnostic], *, unit: str,
    in_workspace: bool, versioned: bool,
) -> list[types.CodeAction]:
    """The three actions for each vqlsp diagnostic among ``diagnostics`` (the label actions once
    per label)."""
    actions: list[types.CodeAction] = []
    labels: dict[str, list[types.Diagnostic]] = {}
    for d in diagnostics:
        if (label := diagnostic_label(d)) is not None:
            labels.setdefault(label, []).append(d)
    if not labels:  # (clients ask on every cursor move: no text is joined for nothing)
        return actions
    text = doc.text.text
    block = syntax(doc.language_id).block
    several = sum(map(len, labels.values())) > 1  # (Neovim sends every diagnostic of the line)
    for d in (d for found in labels.values() for d in found):
        start, end = doc.text.offsets_of(d.range, codec)
        edit = insert_sentence_ignore(text, start, end, doc.language_id)
        title = f"Ignore this {'paragraph' if block else unit} (vqlsp)"
        if several:  # which one
            title += f": {_excerpt(text[start:end])}"
        actions.append(_action(title, [d], _edit(doc, codec, edit, versioned)))
    for label, found in labels.items():
        edit = insert_label_ignore(text, label, doc.language_id)
        actions.append(_action(f"Ignore '{label}' in this file (vqlsp)", found, _edit(doc, codec, edit, versioned)))
        if in_workspace:
            actions.append(types.CodeAction(
                title=f"Ignore '{label}' in the workspace ({IGNORE_FILE}) (vqlsp)",
                kind=types.CodeActionKind.QuickFix, diagnostics=found,
                command=types.Command(title=f"Ignore '{label}' in the workspace", command=IGNORE_IN_WORKSPACE_COMMAND,
                                      arguments=[label, doc.uri]),
            ))
    return actions


def _excerpt(span: str, limit: int = 32) -> str:
    words = " ".join(span.split())
    short = words if len(words) <= limit else words[:limit].rstrip() + "\u2026"
    return f"\u201c{short}\u201d"


def _action(title: str, diagnostics: list[types.Diagnostic], edit: types.WorkspaceEdit) -> types.CodeAction:
    return types.CodeAction(title=title, kind=types.CodeActionKind.QuickFix, diagnostics=diagnostics, edit=edit)


def _edit(doc: Document, codec: PositionCodec, edit: tuple[int, int, str], versioned: bool) -> types.WorkspaceEdit:
    start, end, new_text = edit
    text_edit = types.TextEdit(range=doc.text.range_of(start, end, codec), new_text=new_text)
    if not versioned:
        return types.WorkspaceEdit(changes={doc.uri: [text_edit]})
    identifier = types.OptionalVersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version)
    return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(text_document=identifier, edits=[text_edit])])


def command_arguments(args: Any) -> tuple[str, str]:
    """``[label, uri]`` of ``vqlsp.ignoreLabelInWorkspace`` (ValueError otherwise)."""
    if len(args) != 2 or not all(isinstance(a, str) and a for a in args):
        raise ValueError(f"{IGNORE_IN_WORKSPACE_COMMAND} takes two arguments, a label and a document URI")
    return args[0], args[1]
