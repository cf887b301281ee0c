"""A minimal LSP client that drives ``vqlsp serve`` as a subprocess over stdio.

Used by ``vqlsp demo`` and ``vqlsp bench lsp``: it opens one document, sends
incremental changes in UTF-16 ranges (what most editors negotiate), and waits
for the server's ``vqlsp/classification`` / ``textDocument/publishDiagnostics``
of a given version, recording when each arrived (``time.perf_counter``) so
latency is measured where a user would see it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

CLASSIFICATION = "vqlsp/classification"


def utf16_position(text: str, offset: int) -> types.Position:
    line = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return types.Position(line=line, character=len(text[line_start:offset].encode("utf-16-le")) // 2)


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
        self.classifications: dict[int, tuple[float, dict]] = {}  # version -> (arrival, params)
        self.published: dict[int, float] = {}  # version -> arrival of publishDiagnostics
        self.arrived = asyncio.Event()
        self.uri = "file:///vqlsp/document.txt"
        self.text = ""
        self.version = 0

        @self.client.feature(CLASSIFICATION)
        def on_classification(params):
            params = _plain(params)
            self.classifications[params["version"]] = (time.perf_counter(), params)
            self.arrived.set()

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams):
            if params.version is not None:
                self.published[params.version] = time.perf_counter()
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
            await self.client.stop()

    def open(self, text: str, language_id: str = "plaintext") -> float:
        self.text, self.version = text, 1
        sent = time.perf_counter()
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=self.uri, language_id=language_id, version=1, text=text)
        ))
        return sent

    def change(self, start: int, end: int, new_text: str) -> float:
        """Replace code points ``[start, end)``; returns the send time."""
        rng = types.Range(start=utf16_position(self.text, start), end=utf16_position(self.text, end))
        self.text = self.text[:start] + new_text + self.text[end:]
        self.version += 1
        sent = time.perf_counter()
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=[types.TextDocumentContentChangePartial(range=rng, text=new_text)],
        ))
        return sent

    async def classification(self, version: int, timeout: float = 600.0) -> tuple[float, dict]:
        return await self._wait(lambda: self.classifications.get(version), timeout)

    async def publish(self, version: int, timeout: float = 600.0) -> float:
        return await self._wait(lambda: self.published.get(version), timeout)

    async def stats(self) -> dict:
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="vqlsp.documentStats", arguments=[self.uri])
        )
        return _plain(result)

    async def _wait(self, get, timeout: float):
        async def poll():
            while True:
                self.arrived.clear()
                if (value := get()) is not None:
                    return value
                await self.arrived.wait()

        return await asyncio.wait_for(poll(), timeout)
