"""Hover and ``vqlsp.documentStats`` say how much compute the sentence under the cursor needed
(issue 15): layers recomputed per token on the last update, against the document's mean."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from .harness import PROSE, WAIT_S, Editor, _plain, doc_uri, editor_fixture

editor = editor_fixture(["vscode-utf16"])


async def _stats(editor: Editor, *args) -> dict:
    result = await asyncio.wait_for(
        editor.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="vqlsp.documentStats", arguments=list(args))
        ),
        WAIT_S,
    )
    return _plain(result)


async def _hover(editor: Editor, uri: str, line: int, character: int) -> str:
    hover = await editor.client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri),
                          position=types.Position(line=line, character=character))
    )
    return hover.contents.value


async def test_sentence_compute_against_the_document_mean(editor: Editor, tiny_model_dir):
    await editor.initialize({"model": str(tiny_model_dir), "device": "cpu", "debounceMs": 5})
    uri = doc_uri("compute.txt")
    editor.open(uri, PROSE)
    await editor.classification(uri, 1)
    stats = await _stats(editor, uri, {"line": 0, "character": 3})
    depth = len(stats["rows_changed_per_layer"])
    # the first pass computed every row at every layer: the sentence and the document alike
    assert stats["compute"]["rowsPerToken"] == depth
    assert stats["computeAtCursor"] == {"rowsPerToken": depth, "learnersPerRow": None, "lastUpdate": True}
    assert all(s["compute"]["rowsPerToken"] == depth for s in stats["span_labels"])
    assert "Compute for this sentence on the last update: 2.00 layers recomputed per token" in await _hover(
        editor, uri, 0, 3)

    # Type into the last sentence: it is recomputed, the first sentence (before it) is not.
    text = editor.texts[uri]
    at = text.index("all wrote")
    version = editor.change(uri, [(at, at, "quickly ")])
    await editor.classification(uri, version)
    last_line = editor.texts[uri].count("\n", 0, at)
    stats = await _stats(editor, uri, {"line": last_line, "character": 5})
    mine, doc = stats["computeAtCursor"], stats["compute"]
    assert mine["lastUpdate"] and 0 < mine["rowsPerToken"] <= depth
    assert 0 < doc["rowsPerToken"] < mine["rowsPerToken"]  # rows before the edit were all reused
    hover = await _hover(editor, uri, last_line, 5)
    assert f"{mine['rowsPerToken']:.2f} layers recomputed per token (document mean {doc['rowsPerToken']:.2f})" in hover

    with pytest.raises(JsonRpcException, match="position"):
        await _stats(editor, uri, {"line": "zero"})
