"""The vqlsp language server: one thin handler per LSP method, and ``serve``.

Handlers translate LSP messages into calls on ``VqlspServer`` (``core.py``)
and its ``DocumentStore``; errors a client can cause are answered here, once
(an LSP error for requests, a ``window/logMessage`` for notifications).

Protocol reference: LSP 3.17 (text synchronisation, publish/pull diagnostics,
work-done progress, position encodings); vqlsp's own notifications and
command are listed in ``vqlsp.lsp``'s docstring.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace.position_codec import PositionCodec

from vqlsp.text.positions import InvalidRange

from .core import HOVER_WAIT_S, RESULT_WAIT_S, STATS_COMMAND, VqlspServer, short_name
from .diagnostics import document_stats, lsp_full_report
from .documents import UnknownDocument
from .hover import lsp_hover, span_at
from .jobs import FOREGROUND
from .options import settings_payload
from .protocol import client_pulls_diagnostics


def build_server(*, dense: bool = False) -> VqlspServer:
    server = VqlspServer(dense=dense)

    @server.feature(types.INITIALIZE)
    def initialize(ls: VqlspServer, params: types.InitializeParams) -> None:
        ls.store.codec = PositionCodec(ls.workspace.position_encoding)
        ls.pull = client_pulls_diagnostics(params.capabilities)
        ls.init_settings = params.initialization_options
        ls.apply_settings(None, act=False)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: VqlspServer, params: types.InitializedParams) -> None:
        await ls.pull_configuration()
        if ls.model_state == "not loaded":
            ls.start_loading()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: VqlspServer, params: None) -> None:
        for doc in list(ls.store.documents.values()):
            ls.closed(doc)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: VqlspServer, params: types.DidChangeConfigurationParams) -> None:
        payload = settings_payload(params.settings)
        if payload is not None:
            ls.apply_settings(payload)
        else:  # a bare "something changed" (or other sections only): ask for ours
            await ls.pull_configuration()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: VqlspServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        reopened = item.uri in ls.store
        doc = ls.store.open(item.uri, item.language_id, item.version, item.text)
        if reopened:
            ls.log_message(f"{short_name(item.uri)} opened again; its text replaces the server's", types.MessageType.Warning)
        if doc.binary:
            ls.log_message(f"{short_name(item.uri)} holds NUL characters (binary?); not analysed", types.MessageType.Warning)
        ls.opened(doc)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: VqlspServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        try:
            report = ls.store.change(uri, params.text_document.version, params.content_changes)
        except UnknownDocument as exc:
            ls.log_message(f"ignored a change: {exc}", types.MessageType.Warning)
            return
        for warning in report.warnings:
            ls.log_message(f"{short_name(uri)}: {warning}", types.MessageType.Warning)
        if report.desynced_now:
            ls.desynced(report.document)
            return
        if report.resynced_now:
            ls.log_message(f"{short_name(uri)}: whole text received; back in sync", types.MessageType.Info)
            ls.opened(report.document)
        ls.request_update(report.document, typed=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: VqlspServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        try:
            doc = ls.store.close(uri)
        except UnknownDocument as exc:
            ls.log_message(f"ignored a close: {exc}", types.MessageType.Warning)
            return
        ls.closed(doc)

    @server.feature(
        types.TEXT_DOCUMENT_DIAGNOSTIC,
        types.DiagnosticOptions(identifier="vqlsp", inter_file_dependencies=False, workspace_diagnostics=False),
    )
    async def diagnostic(ls: VqlspServer, params: types.DocumentDiagnosticParams):
        uri = params.text_document.uri
        if uri not in ls.store:
            raise JsonRpcInvalidParams(f"document {uri} is not open")
        current = await ls.current_analysis(uri, RESULT_WAIT_S)
        doc = ls.store.get(uri)
        result_id = f"{doc.revision}.{doc.published}.{ls.config_generation}" if current else f"{doc.revision}.none"
        if params.previous_result_id == result_id:
            return types.RelatedUnchangedDocumentDiagnosticReport(result_id=result_id)
        return lsp_full_report(doc if current else None, ls.store.codec, ls.options.diagnostics, ls.unit(), result_id)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: VqlspServer, params: types.HoverParams):
        uri = params.text_document.uri
        if uri not in ls.store:
            ls.log_message(f"hover: document {uri} is not open", types.MessageType.Warning)
            return None
        current = await ls.current_analysis(uri, HOVER_WAIT_S)
        doc = ls.store.get(uri)
        publication = current or doc.last
        if publication is None:
            return None
        try:
            offset = doc.text.offset_at(params.position, ls.store.codec)
        except InvalidRange:  # inside a character (between the halves of a surrogate pair)
            offset = None
        span = span_at(doc.current_spans(), offset) if offset is not None else None
        return lsp_hover(publication, span, ls.unit(), stale=current is None)

    @server.command(STATS_COMMAND)
    async def document_stats_command(ls: VqlspServer, *args: Any) -> dict:
        if len(args) != 1 or not isinstance(args[0], str):
            raise JsonRpcInvalidParams(f"{STATS_COMMAND} takes one argument, a document URI")
        uri = args[0]
        if uri not in ls.store:
            raise JsonRpcInvalidParams(f"document {uri} is not open")
        stats: dict[str, Any] = {}
        if ls.worker is not None:
            stats = await ls.jobs.run(FOREGROUND, ls.worker.stats, uri)
        doc = ls.store.get(uri)
        text_hash = hashlib.sha256(doc.text.text.encode("utf-8", "surrogatepass")).hexdigest()  # on request only
        out = document_stats(doc, stats, text_hash)
        out.update(model=ls.model_labels, modelState=ls.model_state, updatesStarted=ls.scheduler.started,
                   settlesStarted=ls.settles, resultsDropped=ls.dropped,
                   positionEncoding=str(ls.store.codec.encoding), pullDiagnostics=ls.pull,
                   requestsPending=len(ls.protocol._request_futures), heapReleases=ls.heap.releases)
        return out

    return server


ONEDNN_CACHE_CAPACITY = 64


def serve(
    tcp: str | None = None, *, dense: bool = False, threads: int | None = None, max_message_bytes: int | None = None
) -> None:
    """Run the server over stdio, or over TCP at ``HOST:PORT``.

    ``threads``: torch's intra-op threads for inference (default
    ``$VQLSP_THREADS``, else 1). An incremental update multiplies a few rows at a
    time, which more threads barely speed up, and on a busy machine OpenMP
    threads that spin at every barrier cost far more than they give (measured on
    a shared 2-core box: a 1-token update of a 1024-token document with the tiny
    test model took 12 ms at p50 with 1 thread and 440 ms with 2). An editor's
    server shares the machine with the editor, so one thread is the default;
    raise it for faster first passes on an otherwise idle machine.

    ``max_message_bytes``: the largest ``Content-Length`` accepted (default
    ``$VQLSP_MAX_MESSAGE_BYTES``, else 64 MiB); a larger message is answered
    with an error and skipped without being read into memory (``framing``).
    """
    # oneDNN (torch's CPU kernels) caches a compiled primitive per operand shape, up to 1,024
    # of them; the engine's row counts vary with every edit, so the cache fills with shapes
    # seen once and holds hundreds of MiB (measured with the tiny test model: 539 -> 649 MiB
    # over 3,600 edits at the default, 403 -> 461 MiB at 64). Read when the first primitive is
    # made, so before any inference.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))
    import torch

    from . import framing

    torch.set_num_threads(threads or int(os.environ.get("VQLSP_THREADS", "0") or 0) or 1)
    limit = max_message_bytes or int(os.environ.get("VQLSP_MAX_MESSAGE_BYTES", "0") or 0)
    limit = limit or framing.DEFAULT_MAX_MESSAGE_BYTES
    server = build_server(dense=dense)
    try:
        if tcp:
            host, _, port = tcp.rpartition(":")
            framing.start_tcp(server, host or "127.0.0.1", int(port), max_message_bytes=limit)
        else:
            framing.start_io(server, max_message_bytes=limit)
    finally:
        server.jobs.close(wait=10.0)
        server.text_thread.shutdown(wait=False, cancel_futures=True)


__all__ = ["VqlspServer", "build_server", "serve"]
