"""Bad input never crashes the server and never yields a result computed from the wrong text.

Each case is answered with an LSP error or a ``window/logMessage`` (and, where
the text may have been lost, a ``vqlsp/resync`` notification until the whole
text comes again); afterwards the server is still serving and in sync.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from .harness import PROSE, SERVER, SERVER_ENV, Editor, doc_uri, editor_fixture, sha

editor = editor_fixture(["vscode-utf16"])
pull_editor = editor_fixture(["neovim-utf8"])


def send_raw(editor: Editor, message: dict) -> None:
    """Write a JSON-RPC message as-is (the client API would refuse to build a malformed one)."""
    body = json.dumps({"jsonrpc": "2.0", **message}).encode()
    editor.client.protocol.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)


def logged(editor: Editor, needle: str):
    return lambda: next((m for m in editor.client.log_messages if needle in m.message), None)


async def start(editor: Editor, tiny_model_dir, **options) -> None:
    await editor.initialize({"model": str(tiny_model_dir), "device": "cpu", "debounceMs": 0, **options})


async def test_malformed_and_out_of_range_positions(editor: Editor, tiny_model_dir):
    await start(editor, tiny_model_dir)
    uri = doc_uri("positions.txt")
    editor.open(uri, "One line.\nTwo lines.")
    await editor.classification(uri, 1)

    # Past the end of a line / past the last line: clamped as the spec says, and reported.
    changes = [
        types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=0, character=99), end=types.Position(line=0, character=99)),
            text=" More.",
        ),
        types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=42, character=0), end=types.Position(line=42, character=7)),
            text="\nThree.",
        ),
    ]
    editor.send_changes(uri, changes, "One line. More.\nTwo lines.\nThree.")
    got = await editor.classification(uri)
    assert got["textHash"] == sha(editor.texts[uri])
    await editor.until(logged(editor, "past the end of line 0"))
    await editor.until(logged(editor, "past the last line"))

    # A negative line cannot be read: the change is lost, so the document is desynced ...
    send_raw(editor, {
        "method": "textDocument/didChange",
        "params": {
            "textDocument": {"uri": uri, "version": 10},
            "contentChanges": [{"range": {"start": {"line": -1, "character": 0}, "end": {"line": 0, "character": 1}}, "text": "x"}],
        },
    })
    resync = await editor.until(lambda: next((r for r in editor.client.resyncs if r["uri"] == uri), None))
    assert "could not be read" in resync["reason"]
    await editor.until(lambda: next((p for p in reversed(editor.client.published) if p.uri == uri and not p.diagnostics), None))
    # Incremental changes while desynced produce nothing; the whole text brings it back.
    editor.versions[uri] = 10
    editor.change(uri, [(0, 0, "ignored ")])
    editor.replace_all(uri, "Back in sync. Fully.")
    got = await editor.classification(uri)
    assert got["textHash"] == sha("Back in sync. Fully.")
    assert not any(c["uri"] == uri and c["version"] == 11 for c in editor.client.classifications)
    await editor.assert_in_sync(uri)

    # A reversed range desyncs too: nothing is computed from a guess.
    other = doc_uri("reversed.txt")
    editor.open(other, "First.\nSecond.")
    await editor.classification(other, 1)
    reversed_range = types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=1, character=3), end=types.Position(line=0, character=1)), text="?"
    )
    editor.send_changes(other, [reversed_range], "unknown")
    resync = await editor.until(lambda: next((r for r in editor.client.resyncs if r["uri"] == other), None))
    assert "before its start" in resync["reason"]
    stats = await editor.stats(other)
    assert stats["desynced"] and not stats["current"]

    # A malformed request gets an InvalidParams error response (pygls alone would not answer).
    future: Future = Future()
    editor.client.protocol._request_futures["raw-hover"] = future
    send_raw(editor, {"id": "raw-hover", "method": "textDocument/hover",
                      "params": {"textDocument": {"uri": uri}, "position": {"line": "x", "character": 0}}})
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(asyncio.wrap_future(future), 10)
    assert error.value.code == -32602


async def test_versions_unknown_uris_empty_and_binary(editor: Editor, tiny_model_dir):
    await start(editor, tiny_model_dir)
    uri = doc_uri("versions.txt")
    editor.open(uri, PROSE, version=5)
    await editor.classification(uri, 5)
    # Repeated and older versions: applied in arrival order, reported, results stamped as sent.
    editor.change(uri, [(0, 0, "Yes. ")], version=5)
    editor.change(uri, [(0, 0, "No. ")], version=3)
    got = await editor.classification(uri, 3)
    assert got["textHash"] == sha(editor.texts[uri])
    await editor.until(logged(editor, "is not newer than"))

    # Unknown URIs: a change is logged and ignored; requests get null or an error.
    ghost = doc_uri("never-opened.txt")
    editor.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=ghost, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text="boo")],
    ))
    await editor.until(logged(editor, "ignored a change"))
    hover = await editor.client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=ghost), position=types.Position(line=0, character=0))
    )
    assert hover is None
    with pytest.raises(JsonRpcException):
        await editor.stats(ghost)
    editor.client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=ghost)))
    await editor.until(logged(editor, "ignored a close"))

    # An empty document: the document head's prior, no spans; typing into it works.
    empty = doc_uri("empty.txt")
    editor.open(empty, "")
    got = await editor.classification(empty, 1)
    assert got["tokens"] == 0 and got["label"] is not None
    assert list(await editor.diagnostics(empty, 1)) == []
    editor.change(empty, [(0, 0, "Now there is text.")])
    assert (await editor.classification(empty))["tokens"] > 0
    editor.change(empty, [(0, len(editor.texts[empty]), "")])
    assert (await editor.classification(empty))["tokens"] == 0

    # A binary blob: reported, not analysed, until it becomes text.
    blob = doc_uri("blob.bin")
    editor.open(blob, bytes(range(256)).decode("latin-1") * 4)
    await editor.until(logged(editor, "binary"))
    editor.replace_all(blob, "Plain prose again.")
    got = await editor.classification(blob)
    assert got["textHash"] == sha("Plain prose again.") and not any(
        c["uri"] == blob and c["version"] == 1 for c in editor.client.classifications
    )
    await editor.assert_in_sync(uri)


async def test_a_long_document_is_analysed_in_sections(editor: Editor, tiny_model_dir):
    """Every part of a long document is classified, section by section; an edit in the middle
    updates its own section only; the results equal a dense forward of the final sections."""
    await start(editor, tiny_model_dir, sectionTokens=32, positionPolicy="exact")
    uri = doc_uri("long.txt")
    editor.open(uri, "\n\n".join([PROSE.strip()] * 6))

    def complete(version: int):
        return lambda: next((c for c in reversed(editor.client.classifications)
                             if c["uri"] == uri and c["version"] == version and c["sections"] == c["sectionsAnalysed"]), None)

    got = await editor.until(complete(1))
    stats = await editor.stats(uri)
    bounds = stats["sections"]
    assert got["sections"] == len(bounds) > 3 and got["analysedTokens"] == got["tokens"] == bounds[-1][1]
    assert all(b - a <= 32 for a, b in bounds) and all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
    assert max(s["end"] for s in stats["span_labels"]) > 0.9 * len(editor.texts[uri])  # spans to the end
    middle = len(editor.texts[uri]) // 2
    editor.change(uri, [(middle, middle + 3, "xyz")])
    got = await editor.until(complete(editor.versions[uri]))
    stats = await editor.assert_in_sync(uri)
    rows = stats["rows_changed_per_layer"]
    assert not got["fullPass"] and 0 < max(rows) <= 2 * 32 < got["tokens"]  # one section's rows, not the document's
    # The final results: a dense forward of each section (exact positions), pooled.
    from vqlsp.analysis.reference import dense_document
    from vqlsp.model.registry import load_model, load_tokenizer
    from vqlsp.text.tokenizer import TextTokenizer

    model = load_model(tiny_model_dir, "cpu")
    ids = TextTokenizer(load_tokenizer(tiny_model_dir)).encode_ids(editor.texts[uri])
    want = dense_document(model, ids, [tuple(b) for b in stats["sections"]])
    assert got["probabilities"] == pytest.approx(want, abs=1e-4)


async def test_pull_client_gets_no_pushes(pull_editor: Editor, tiny_model_dir):
    editor = pull_editor
    await start(editor, tiny_model_dir)
    uri = doc_uri("pull.md")
    editor.open(uri, PROSE, language_id="markdown")
    await editor.classification(uri, 1)
    assert len(await editor.diagnostics(uri)) == 5
    editor.change(uri, [(0, 0, "Hello there. ")])
    # A pull right after a change waits for that change's results.
    assert len(await editor.diagnostics(uri)) == 6
    report = await editor.client.text_document_diagnostic_async(types.DocumentDiagnosticParams(
        text_document=types.TextDocumentIdentifier(uri=uri), previous_result_id=None
    ))
    unchanged = await editor.client.text_document_diagnostic_async(types.DocumentDiagnosticParams(
        text_document=types.TextDocumentIdentifier(uri=uri), previous_result_id=report.result_id
    ))
    assert unchanged.kind == "unchanged"
    editor.close(uri)
    assert editor.client.published == []  # never both: no publishDiagnostics to a pull client
    with pytest.raises(JsonRpcException):
        await editor.diagnostics(uri)


async def test_client_disconnect_ends_the_server_cleanly(tiny_model_dir):
    server = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=SERVER_ENV,
    )

    def send(message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    send({"id": 1, "method": "initialize", "params": {"capabilities": {}, "processId": None,
                                                       "initializationOptions": {"model": str(tiny_model_dir)}}})
    send({"method": "initialized", "params": {}})
    send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": doc_uri("bye.txt"), "languageId": "plaintext", "version": 1, "text": PROSE}}})
    await server.stdin.drain()
    # Wait until the server has produced its first classification, then vanish without shutdown/exit.
    seen = b""
    while b"vqlsp/classification" not in seen:
        chunk = await asyncio.wait_for(server.stdout.read(4096), 30)
        assert chunk, "server closed stdout early"
        seen += chunk
    server.stdin.close()
    code = await asyncio.wait_for(server.wait(), 30)
    stderr = (await server.stderr.read()).decode()
    assert "Traceback" not in stderr, stderr
    assert code in (0, 1), (code, stderr)


async def test_tcp_transport(tiny_model_dir):
    import socket

    from .harness import make_client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        *SERVER, "--tcp", f"127.0.0.1:{port}", "--log-level", "info", env=SERVER_ENV, stderr=asyncio.subprocess.PIPE
    )
    client = make_client()
    try:
        while b"Serving on" not in (line := await asyncio.wait_for(server.stderr.readline(), 30)):
            assert line, "server exited before listening"
        await client.start_tcp("127.0.0.1", port)
        editor = Editor(client, "vscode-utf16")
        await start(editor, tiny_model_dir)
        uri = doc_uri("tcp.txt")
        editor.open(uri, PROSE)
        assert (await editor.classification(uri, 1))["textHash"] == sha(PROSE)
        await client.shutdown_session()
    finally:
        await client.stop()
        if server.returncode is None:
            server.terminate()
        await server.wait()
