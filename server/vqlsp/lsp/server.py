"""The vqlsp language server: one thin handler per LSP method, and ``serve``.

Handlers translate LSP messages into calls on ``VqlspServer`` (``core.py``)
and its ``DocumentStore``; errors a client can cause are answered here, once
(an LSP error for requests, a ``window/logMessage`` for notifications).

Protocol reference: LSP 3.17 (text synchronisation, publish/pull diagnostics,
work-done progress, position encodings); vqlsp's own notifications and
command are listed in ``vqlsp.lsp``'s docstring.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace.position_codec import PositionCodec

from vqlsp.text.positions import InvalidRange

from .actions import IGNORE_IN_WORKSPACE_COMMAND, code_actions, command_arguments
from .core import FOOTPRINT_COMMAND, HOVER_WAIT_S, RESULT_WAIT_S, STATS_COMMAND, VqlspServer
from .diagnostics import document_stats, full_report_json, spans_at
from .documents import UnknownDocument
from .footprint import document_bytes
from .hover import lsp_hover
from .ignore_file import IGNORE_FILE, IgnoreFileError
from .jobs import FOREGROUND
from .loop_lag import LoopLagMeter
from .options import settings_payload
from .protocol import JsonText, client_pulls_diagnostics
from .scope import uri_path


def build_server(*, dense: bool = False, loop_lag: bool = False) -> VqlspServer:
    server = VqlspServer(dense=dense)
    meter = LoopLagMeter() if loop_lag else None
    tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    @server.feature(types.INITIALIZE)
    def initialize(ls: VqlspServer, params: types.InitializeParams) -> None:
        ls.store.codec = PositionCodec(ls.workspace.position_encoding)
        ls.pull = client_pulls_diagnostics(params.capabilities)
        ls.init_settings = params.initialization_options
        folders = [f.uri for f in params.workspace_folders or []] or [params.root_uri or ""]
        ls.folders = [p for p in map(uri_path, folders) if p is not None]
        for problem in ls.ignores.load(ls.folders):
            ls.show_once(problem)
        ls.apply_settings(None, act=False)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: VqlspServer, params: types.InitializedParams) -> None:
        if meter is not None and not tasks:
            tasks.add(asyncio.get_running_loop().create_task(meter.run()))
        await ls.pull_configuration()
        if ls.model_state == "not loaded":
            ls.start_loading()
        await _watch_ignore_files(ls)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: VqlspServer, params: types.DidChangeWatchedFilesParams) -> None:
        if any(c.uri.rstrip("/").endswith("/" + IGNORE_FILE) for c in params.changes):
            for problem in ls.ignores.load(ls.folders):
                ls.show_once(problem)
            ls.log_message(f"{IGNORE_FILE} changed: labels ignored in the workspace re-read")
            ls.config_generation += 1
            ls.republish_all()

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
        ls.open_document(params.text_document)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: VqlspServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.changes.submit(params.text_document.uri, params.text_document.version, params.content_changes)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: VqlspServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        if uri not in ls.store and ls.changes.pending(uri):
            ls.changes.discard(uri)  # closed while its open was still pending: it never happens
            return
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
        await ls.changes.applied(uri)
        current = await ls.current_analysis(uri, RESULT_WAIT_S)
        doc = ls.store.get(uri)
        result_id = f"{doc.revision}.{doc.published}.{ls.config_generation}" if current else f"{doc.revision}.none"
        if params.previous_result_id == result_id:
            return types.RelatedUnchangedDocumentDiagnosticReport(result_id=result_id)
        return full_report_json(doc if current else None, ls.store.codec, ls.options.diagnostics, ls.unit(), result_id,
                               ls.silence(doc))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: VqlspServer, params: types.HoverParams):
        uri = params.text_document.uri
        if uri not in ls.store:
            ls.log_message(f"hover: document {uri} is not open", types.MessageType.Warning)
            return None
        await ls.changes.applied(uri)
        current = await ls.current_analysis(uri, HOVER_WAIT_S)
        doc = ls.store.get(uri)
        publication = current or doc.last
        if publication is None:
            return None
        try:
            offset = doc.text.offset_at(params.position, ls.store.codec)
        except InvalidRange:  # inside a character (between the halves of a surrogate pair)
            offset = None
        spans = spans_at(doc.spans_around(offset), offset) if offset is not None else []
        return lsp_hover(publication, spans, ls.unit(), stale=current is None,
                         options=ls.options.diagnostics, silence=ls.silence(doc))

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
    )
    async def code_action(ls: VqlspServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        await ls.changes.applied(uri)
        if uri not in ls.store:
            ls.log_message(f"code actions: document {uri} is not open", types.MessageType.Warning)
            return None
        doc = ls.store.get(uri)
        if doc.desynced is not None:
            return None  # its text may not be the client's: an edit could land on the wrong text
        # Clients ask on every cursor move: where the writer is. (Not a hover: VS Code sends those
        # for the mouse, which reads; moving the pin there would cost the section typed in its state.)
        focus(ls, uri, params.range.start)
        in_workspace = ls.ignores.folder_of(uri_path(uri)) is not None
        versioned = bool(ls.capability("workspace.workspace_edit.document_changes"))
        return code_actions(doc, ls.store.codec, params.context.diagnostics, unit=ls.unit(),
                            in_workspace=in_workspace, versioned=versioned)

    @server.command(IGNORE_IN_WORKSPACE_COMMAND)
    def ignore_label_in_workspace(ls: VqlspServer, *args: Any) -> dict:
        try:
            label, uri = command_arguments(args)
        except ValueError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        folder = ls.ignores.folder_of(uri_path(uri))
        if folder is None:
            raise JsonRpcInvalidParams(f"{uri} is not inside a workspace folder")
        try:
            path = ls.ignores.add(folder, label)
        except (IgnoreFileError, OSError) as exc:
            ls.show_once(f"cannot ignore {label!r} in the workspace: {exc}", types.MessageType.Error)
            return {"ignored": False}
        ls.log_message(f"{label!r} ignored in the workspace ({path})")
        ls.config_generation += 1
        ls.republish_all()
        return {"ignored": True, "file": str(path)}

    @server.command(STATS_COMMAND)
    async def document_stats_command(ls: VqlspServer, *args: Any) -> dict:
        if not 1 <= len(args) <= 2 or not isinstance(args[0], str):
            raise JsonRpcInvalidParams(f"{STATS_COMMAND} takes a document URI and optionally a position")
        uri = args[0]
        await ls.changes.applied(uri)
        if uri not in ls.store:
            raise JsonRpcInvalidParams(f"document {uri} is not open")
        offset = stats_offset(ls, ls.store.get(uri), args[1]) if len(args) == 2 else None
        stats: dict[str, Any] = {}
        if ls.worker is not None:
            stats = await ls.jobs.run(FOREGROUND, ls.worker.stats, uri)
        doc = ls.store.get(uri)
        text_hash = hashlib.sha256(doc.text.text.encode("utf-8", "surrogatepass")).hexdigest()  # on request only
        out = document_stats(doc, stats, text_hash, offset)
        out.update(model=ls.model_labels, modelState=ls.model_state, updatesStarted=ls.scheduler.started,
                   settlesStarted=ls.settles, resultsDropped=ls.dropped,
                   positionEncoding=str(ls.store.codec.encoding), pullDiagnostics=ls.pull,
                   requestsPending=len(ls.protocol._request_futures), heapReleases=ls.heap.releases,
                   changesSliced=ls.changes.sliced, gc=ls.collections.report())
        if meter is not None:
            out["loopLag"] = meter.report()
        # As JSON text: pygls's converter walks every value (a 100k-token document's thousands
        # of spans: ~75 ms of the event loop)
        return JsonText([json.dumps(out).encode()])

    @server.command(FOOTPRINT_COMMAND)
    async def document_footprint_command(ls: VqlspServer, *args: Any) -> dict:
        """What the document's own structures hold beside the state budget (a walk over all of
        them: 0.17 s of the event loop at 10 MB, so not part of ``documentStats``)."""
        if len(args) != 1 or not isinstance(args[0], str):
            raise JsonRpcInvalidParams(f"{FOOTPRINT_COMMAND} takes a document URI")
        await ls.changes.applied(args[0])
        if args[0] not in ls.store:
            raise JsonRpcInvalidParams(f"document {args[0]} is not open")
        parts = document_bytes(ls.store.get(args[0]))
        return {"textBytes": parts.pop("total"), "textBytesByPart": parts}

    return server


async def _watch_ignore_files(ls: VqlspServer) -> None:
    """Asks the client to report changes to ``.vqlsp.json`` (edits by hand), where it can."""
    if not ls.folders or not ls.capability("workspace.did_change_watched_files.dynamic_registration"):
        return
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern=f"**/{IGNORE_FILE}")])
    registration = types.Registration(id="vqlsp-ignore-file", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                      register_options=options)
    try:
        await ls.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
    except Exception as exc:  # the client's answer is outside our control: no watching, that is all
        ls.log_message(f"cannot watch {IGNORE_FILE}: {exc}", types.MessageType.Warning)


def focus(ls: VqlspServer, uri: str, position: types.Position) -> None:
    """Tell the server where the writer's cursor is (a request's position in ``uri``)."""
    if uri not in ls.store:
        return
    doc = ls.store.get(uri)
    try:
        offset = doc.text.offset_at(position, ls.store.codec)
    except (InvalidRange, ValueError, IndexError):  # inside a character, or out of the text: no news
        return
    ls.focus(doc, offset)


def stats_offset(ls: VqlspServer, doc, position: Any) -> int:
    """``vqlsp.documentStats``' optional position ``{line, character}`` (the client's units) as a
    code-point offset into the current text."""
    if not (isinstance(position, dict) and type(position.get("line")) is int
            and type(position.get("character")) is int):
        raise JsonRpcInvalidParams(f'{STATS_COMMAND}: a position is {{"line": int, "character": int}}')
    try:
        return doc.text.offset_at(types.Position(line=position["line"], character=position["character"]),
                                  ls.store.codec)
    except (InvalidRange, ValueError) as exc:
        raise JsonRpcInvalidParams(f"{STATS_COMMAND}: position {position}: {exc}") from None


ONEDNN_CACHE_CAPACITY = 64


def serve(
    tcp: str | None = None, *, dense: bool = False, threads: int | None = None, max_message_bytes: int | None = None,
    loop_lag: bool = False,
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

    ``loop_lag``: measure how late the event loop wakes up (``loop_lag``), reported
    by ``vqlsp.documentStats`` as ``loopLag``; for benchmarks.
    """
    # oneDNN (torch's CPU kernels) caches a compiled primitive per operand shape, up to 1,024
    # of them; the engine's row counts vary with every edit, so the cache fills with shapes
    # seen once and holds hundreds of MiB (measured with the tiny test model: 539 -> 649 MiB
    # over 3,600 edits at the default, 403 -> 461 MiB at 64). ideep, between torch and oneDNN,
    # keeps its own cache of the same primitives (``LRU_CACHE_CAPACITY``, also 1,024 per
    # thread) and so keeps them alive past oneDNN's limit: with only oneDNN's capped, the tiny
    # model's soak still grew 517 -> 596 MiB after warm-up (275 MiB baseline), the inference
    # thread's malloc arena holding 300 MiB of primitives; with both at 64, 339 -> 346 MiB.
    # Both are read when the first primitive is made, so before any inference.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))
    os.environ.setdefault("LRU_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))
    import torch

    from . import framing

    torch.set_num_threads(threads or int(os.environ.get("VQLSP_THREADS", "0") or 0) or 1)
    limit = max_message_bytes or int(os.environ.get("VQLSP_MAX_MESSAGE_BYTES", "0") or 0)
    limit = limit or framing.DEFAULT_MAX_MESSAGE_BYTES
    server = build_server(dense=dense, loop_lag=loop_lag)
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
