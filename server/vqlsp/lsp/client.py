"""A minimal LSP client that drives ``vqlsp serve`` as a subprocess over stdio.

Used by ``vqlsp demo``, ``vqlsp bench lsp`` and ``vqlsp bench typing``: it opens
one document, sends incremental changes in UTF-16 ranges (what most editors
negotiate), one or several content changes per ``didChange`` (multi-cursor edits,
replace-all), and waits for the server's ``vqlsp/classification`` /
``textDocument/publishDiagnostics`` of a given version, recording when each
arrived (``time.perf_counter``) so latency is measured where a user would see
it. Nothing here waits for a result unless asked to: a benchmark can send on a
clock and read the arrival logs (``events``, ``diagnostic_events``) afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import sys
import time
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

CLASSIFICATION = "vqlsp/classification"
# A request no server handler waits on: the answer (an error, "method not found") comes from
# the server's event loop as soon as it reads the message, so its round trip measures how long
# the loop was busy with something else. (``$/`` methods may be refused by any server.)
PROBE = "$/vqlsp/probe"


def utf16_position(text: str, offset: int, lines: Sequence[int] | None = None) -> types.Position:
    """The LSP position (UTF-16 columns) of code point ``offset``; ``lines`` (from
    ``line_starts``) saves a scan of the text when many positions of one text are needed."""
    if lines is None:
        line = text.count("\n", 0, offset)
        line_start = text.rfind("\n", 0, offset) + 1
    else:
        line = bisect_right(lines, offset) - 1
        line_start = lines[line]
    return types.Position(line=line, character=len(text[line_start:offset].encode("utf-16-le")) // 2)


def line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in re.finditer("\n", text))]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class StdioSession:
    """One server subprocess and one open document."""

    def __init__(self, server_args: list[str] | None = None):
        self.server_args = server_args or []
        self.client = LanguageClient("vqlsp-client", "1")
        self.classifications: dict[int, tuple[float, dict]] = {}  # version -> (arrival, params), the latest
        self.published: dict[int, float] = {}  # version -> arrival of publishDiagnostics
        self.events: list[tuple[float, dict]] = []  # every classification (any uri), in arrival order
        # the session's document's publishDiagnostics: (arrival, version, number of diagnostics)
        self.diagnostic_events: list[tuple[float, int | None, int]] = []
        self.arrived = asyncio.Event()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)  # the server's last log lines
        self._drain: asyncio.Task | None = None
        self._pending: set[asyncio.Future] = set()  # requests whose answers nobody awaits
        self.uri = "file:///vqlsp/document.txt"
        self.text = ""
        self.version = 0

        @self.client.feature(CLASSIFICATION)
        def on_classification(params):
            arrival, params = time.perf_counter(), _plain(params)
            self.events.append((arrival, params))
            if params["uri"] == self.uri:
                self.classifications[params["version"]] = (arrival, params)
            self.arrived.set()

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams):
            if params.uri != self.uri:
                return
            arrival = time.perf_counter()
            self.diagnostic_events.append((arrival, params.version, len(params.diagnostics)))
            if params.version is not None:
                self.published[params.version] = arrival
                self.arrived.set()

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: types.LogMessageParams):
            if params.type <= types.MessageType.Warning:
                print(f"[server] {params.message}", file=sys.stderr)

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_show(params: types.ShowMessageParams):
            print(f"[server] {params.message}", file=sys.stderr)

    async def start(self, options: dict[str, Any]) -> None:
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        await self.client.start_io(sys.executable, "-m", "vqlsp", "serve", *self.server_args, env=env)
        # pygls pipes the server's stderr and never reads it: once the pipe's buffer is full, the
        # server would block on its next log line. Read it, keeping the tail for error reports.
        process = getattr(self.client, "_server", None)
        if process is not None and process.stderr is not None:
            self._drain = asyncio.create_task(_drain(process.stderr, self.stderr_tail))
        capabilities = types.ClientCapabilities(
            text_document=types.TextDocumentClientCapabilities(
                publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True),
                synchronization=types.TextDocumentSyncClientCapabilities(),
            ),
            general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
        )
        await self.client.initialize_async(
            types.InitializeParams(capabilities=capabilities, initialization_options=options, process_id=os.getpid())
        )
        self.client.initialized(types.InitializedParams())

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
        finally:
            for future in list(self._pending):
                future.cancel()
            await self.client.stop()
            if self._drain is not None:
                self._drain.cancel()

    def open(self, text: str, language_id: str = "plaintext", uri: str | None = None) -> float:
        """didOpen at version 1 (of ``uri``, which becomes the session's document, if given)."""
        if uri is not None and uri != self.uri:
            self.uri = uri
            self.classifications.clear()
            self.published.clear()
        self.text, self.version = text, 1
        sent = time.perf_counter()
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=self.uri, language_id=language_id, version=1, text=text)
        ))
        return sent

    def close(self) -> None:
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri)
        ))

    def change(self, start: int, end: int, new_text: str) -> float:
        """Replace code points ``[start, end)``; returns the send time."""
        return self.change_many([(start, end, new_text)])

    def change_many(self, changes: Sequence[tuple[int, int, str]]) -> float:
        """One ``didChange`` (one new version) with several content changes, applied in order:
        each ``(start, end, text)`` is in code points of the text after the changes before it,
        as LSP defines. Returns the send time."""
        content = []
        if len(changes) > 1 and all(a[0] >= b[1] for a, b in zip(changes, changes[1:])):
            # Back to front (a replace-all): every change lies before the ones already applied,
            # so all positions are positions in the current text; one line index, one rebuild.
            lines = line_starts(self.text)
            for start, end, new_text in changes:
                rng = types.Range(start=utf16_position(self.text, start, lines),
                                  end=utf16_position(self.text, end, lines))
                content.append(types.TextDocumentContentChangePartial(range=rng, text=new_text))
            pieces, at = [], 0
            for start, end, new_text in reversed(changes):
                pieces += [self.text[at:start], new_text]
                at = end
            self.text = "".join(pieces) + self.text[at:]
        else:
            for start, end, new_text in changes:
                rng = types.Range(start=utf16_position(self.text, start), end=utf16_position(self.text, end))
                content.append(types.TextDocumentContentChangePartial(range=rng, text=new_text))
                self.text = self.text[:start] + new_text + self.text[end:]
        self.version += 1
        params = types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=content,
        )
        sent = time.perf_counter()
        self.client.text_document_did_change(params)
        return sent

    def place_cursor(self, offset: int) -> None:
        """Say where the writer's cursor is, as VS Code does on every cursor move: a
        ``textDocument/codeAction`` for the empty range at code point ``offset``, its answer
        not awaited."""
        where = utf16_position(self.text, offset)
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri), range=types.Range(start=where, end=where),
            context=types.CodeActionContext(diagnostics=[]),
        )
        self._pending.add(task := asyncio.ensure_future(self.client.text_document_code_action_async(params)))
        task.add_done_callback(self._answered)

    def _answered(self, future: asyncio.Future) -> None:
        self._pending.discard(future)
        if not future.cancelled() and (exc := future.exception()) is not None:
            print(f"[client] a request nobody awaited failed: {exc}", file=sys.stderr)

    async def probe(self) -> tuple[float, float]:
        """Send ``PROBE`` and wait for its answer; returns ``(sent, answered)``."""
        sent = time.perf_counter()
        with contextlib.suppress(JsonRpcException):  # "method not found" is the expected answer
            await self.client.protocol.send_request_async(PROBE, None)
        return sent, time.perf_counter()

    async def classification(self, version: int, timeout: float = 600.0) -> tuple[float, dict]:
        return await self._wait(lambda: self.classifications.get(version), timeout)

    async def publish(self, version: int, timeout: float = 600.0) -> float:
        return await self._wait(lambda: self.published.get(version), timeout)

    async def stats(self) -> dict:
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="vqlsp.documentStats", arguments=[self.uri])
        )
        return _plain(result)

    async def wait_until(self, get, timeout: float):
        """``get()``'s first value that is not None, re-checked whenever a notification arrives."""
        return await self._wait(get, timeout)

    async def _wait(self, get, timeout: float):
        async def poll():
            while True:
                self.arrived.clear()
                if (value := get()) is not None:
                    return value
                await self.arrived.wait()

        return await asyncio.wait_for(poll(), timeout)


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    # read(), not readline(): a line longer than the reader's limit would end readline with an error
    while chunk := await stream.read(1 << 16):
        tail.extend(chunk.decode("utf-8", "replace").splitlines())
