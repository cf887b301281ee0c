"""The server's state and orchestration: options, documents, scheduling, publishing.

State has one owner. ``VqlspServer`` runs on the event loop: it changes the
documents (``DocumentStore``) on didOpen/didChange/didClose and schedules
updates (``Scheduler``); each update cuts a read-only ``Snapshot`` and hands it
to the inference worker (``AnalysisWorker`` on its own single thread, never
pygls's pool, which reads stdin). A result is published only if its revision
is still the document's, stamped with that version: push diagnostics or, for
clients that pull, answers to ``textDocument/diagnostic``; a
``vqlsp/classification`` notification after every update.

The LSP handlers that drive it are in ``server.py``; the custom protocol parts
are listed in ``vqlsp.lsp``'s docstring.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace.position_codec import PositionCodec

from vqlsp import __version__

from .diagnostics import (
    CLASSIFICATION,
    RESYNC,
    classification_params,
    lsp_publish_diagnostics,
)
from .documents import Document, DocumentStore
from .options import SECTION, Options, changed_fields, merge_settings, parse_options
from .protocol import VqlspProtocol
from .scheduler import Scheduler
from .worker import AnalysisWorker

log = logging.getLogger(__name__)

STATS_COMMAND = "vqlsp.documentStats"
LARGE_DOCUMENT_TOKENS = 1024  # a first full pass over more tokens than this reports progress
RESULT_WAIT_S = 60.0  # how long a pull / hover waits for the current version's results
HOVER_WAIT_S = 2.0
CHECK_TOKENS = os.environ.get("VQLSP_CHECK_TOKENS") == "1"


class VqlspServer(LanguageServer):
    def __init__(self, *, dense: bool = False):
        super().__init__("vqlsp", __version__, protocol_cls=VqlspProtocol, max_workers=2)
        self.dense = dense  # force the dense analyzer (benchmark baseline)
        self.options = Options()
        self.init_settings: Any = None
        self.shown_problems: set[str] = set()
        self.store = DocumentStore(PositionCodec())
        self.scheduler = Scheduler(self.run_update, on_quiet=self.settle)
        self.settling: set[str] = set()  # documents whose next update is a settle (``settle``)
        self.settles = 0  # settles started, all documents (stats)
        # Inference: one thread, owned by the worker; never pygls's pool.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vqlsp-inference")
        self.worker: AnalysisWorker | None = None
        self.model_labels: dict[str, Any] = {}
        self.model_state = "not loaded"  # "loading" | "ready" | "failed: ..."
        self.generation = 0  # bumps on every model (re)load; older results are dropped
        self.config_generation = 0  # bumps when diagnostics options change (pull result ids)
        self.pull = False
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self._load_task: asyncio.Task | None = None

    # -- capabilities ------------------------------------------------------------------

    def capability(self, path: str) -> Any:
        node: Any = self.client_capabilities
        for name in path.split("."):
            node = getattr(node, name, None) if node is not None else None
        return node

    # -- messages to the user ----------------------------------------------------------

    def log_message(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        log.log(logging.WARNING if kind <= types.MessageType.Warning else logging.INFO, "%s", message)
        self.window_log_message(types.LogMessageParams(type=kind, message=f"vqlsp: {message}"))

    def show_once(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """Log and show ``message``, unless it was shown before (settings are re-read often)."""
        if message not in self.shown_problems:
            self.shown_problems.add(message)
            self.log_message(message, kind)
            self.window_show_message(types.ShowMessageParams(type=kind, message=f"vqlsp: {message}"))

    # -- options -----------------------------------------------------------------------

    def apply_settings(self, raw: Any, *, act: bool = True) -> None:
        """New raw (camelCase) settings over the initializationOptions; act on what changed."""
        options, problems = parse_options(merge_settings(_section(self.init_settings), _section(raw)))
        for problem in problems:
            self.show_once(problem)
        old, self.options = self.options, options
        changed = changed_fields(old, options)
        self.scheduler.debounce = options.debounce_ms / 1000
        self.scheduler.quiet = options.settle_ms / 1000
        if not changed or not act:
            return
        self.log_message(f"options changed: {', '.join(sorted(changed))}")
        if changed & {"model", "device"}:
            self.start_loading()
            return
        if "memory_budget_mb" in changed and self.worker is not None:
            self.executor.submit(self.worker.set_budget, _budget_bytes(options))
        if changed & {"position_policy", "max_document_tokens", "languages", "diagnostics.unit"}:
            self.reanalyse_all()
        elif changed & {"diagnostics.threshold", "diagnostics.severity"}:
            self.config_generation += 1
            self.republish_all()

    async def pull_configuration(self) -> None:
        if not self.capability("workspace.configuration"):
            return
        try:
            result = await self.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
            )
        except Exception as exc:  # the client's answer is outside our control
            self.log_message(f"workspace/configuration failed: {exc}", types.MessageType.Warning)
            return
        if result and isinstance(result[0], dict):
            self.apply_settings(result[0])

    # -- the model -----------------------------------------------------------------------

    def start_loading(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        self.model_state = "loading"
        self._load_task = asyncio.get_running_loop().create_task(self.load_model())

    async def load_model(self) -> None:
        options = self.options
        self.generation += 1
        generation = self.generation
        self.model_state = "loading"
        where = options.model or "the default model"
        async with self.progress(f"vqlsp: loading {where}"):
            try:
                worker, tokenizer, labels = await asyncio.get_running_loop().run_in_executor(
                    self.executor, _load, options, self.dense
                )
            except Exception as exc:  # bad checkpoint, missing weights, no CUDA: tell the user
                if generation == self.generation:
                    keep = " (still using the previous model)" if self.worker is not None else ""
                    self.model_state = "ready" if self.worker is not None else f"failed: {exc}"
                    self.show_once(f"cannot load the model ({where}): {exc}{keep}", types.MessageType.Error)
                    self.wake_all()
                return
        if generation != self.generation:
            return
        self.worker, self.model_labels, self.model_state = worker, labels, "ready"
        self.store.set_tokenizer(tokenizer)
        self.log_message(f"model ready ({where}, {labels.get('engine')} engine)")
        self.reanalyse_all()

    def progress(self, title: str):
        return _Progress(self, title)

    # -- updates ---------------------------------------------------------------------------

    def analysed(self, doc: Document) -> bool:
        return doc.language_id in self.options.languages and not doc.binary and doc.desynced is None

    def unit(self) -> str:
        return self.options.diagnostics.unit or self.model_labels.get("span_unit") or "sentence"

    def request_update(self, doc: Document, *, immediate: bool = False) -> None:
        self.settling.discard(doc.uri)  # a change: the writer is not paused after all
        if self.analysed(doc):
            self.scheduler.request(doc.uri, immediate=immediate)
        else:
            self.clear(doc)

    def reanalyse_all(self) -> None:
        for doc in self.store.documents.values():
            doc.batches = None
            doc.full_pass_done = False
            self.request_update(doc, immediate=True)

    def republish_all(self) -> None:
        for doc in self.store.documents.values():
            if doc.last is not None and doc.last.revision == doc.revision:
                self.publish_diagnostics(doc)
        if self.pull and self.capability("workspace.diagnostics.refresh_support"):
            self.workspace_diagnostic_refresh(None)

    def settle(self, uri: str) -> None:
        """The scheduler's quiet callback: the writer paused, so if the published results were
        computed on drifted (``stable``) position ids, re-index them and publish exact-position
        results. One update like any other: a keystroke meanwhile waits for it, then runs."""
        doc = self.store.documents.get(uri)
        if doc is None or not self.analysed(doc) or doc.last is None:
            return
        if doc.last.revision != doc.revision or not doc.last.drift:  # drift is 0 under "exact"
            return
        self.settling.add(uri)
        self.settles += 1
        self.scheduler.request(uri, immediate=True)

    async def run_update(self, uri: str) -> None:
        """The scheduler's callback: snapshot on the loop, infer on the worker, publish if current."""
        settle = uri in self.settling
        self.settling.discard(uri)
        doc = self.store.documents.get(uri)
        worker, generation = self.worker, self.generation
        if doc is None or not self.analysed(doc) or worker is None or doc.tokens is None:
            return
        options = self.options
        if CHECK_TOKENS:
            self.check_tokens(doc)
        snap = self.store.snapshot(
            doc, max_tokens=options.max_document_tokens, unit=self.unit(), position_policy=options.position_policy
        )
        if settle:
            snap = dataclasses.replace(snap, settle=True)
        if doc.n_tokens > options.max_document_tokens and not doc.full_pass_done:
            self.show_once(
                f"{short_name(uri)} has {doc.n_tokens} tokens; only the first {options.max_document_tokens} are "
                "analysed (maxDocumentTokens)", types.MessageType.Info,
            )
        large = not doc.full_pass_done and len(snap.ids) > LARGE_DOCUMENT_TOKENS
        async with self.progress(f"vqlsp: analysing {short_name(uri)} ({len(snap.ids)} tokens)") if large else _null():
            try:
                analysis = await asyncio.get_running_loop().run_in_executor(self.executor, worker.update, snap)
            except Exception as exc:  # the update boundary: log, rebuild from the full text next time
                log.exception("update of %s failed", uri)
                self.log_message(f"update of {short_name(uri)} failed ({exc}); rebuilding it", types.MessageType.Error)
                self.executor.submit(worker.drop, uri)  # the next change rebuilds it (no retry loop)
                if (doc := self.store.documents.get(uri)) is not None:
                    doc.batches = None
                return
        for note in analysis.notes:
            self.log_message(note, types.MessageType.Warning if analysis.resynced else types.MessageType.Info)
        doc = self.store.documents.get(uri)
        if doc is None or doc.revision != analysis.revision or generation != self.generation:
            return  # stale: a newer change (or model) has an update coming
        self.publish(doc, analysis)

    def check_tokens(self, doc: Document) -> None:
        """Debug check (VQLSP_CHECK_TOKENS=1): the incremental tokens equal a fresh tokenization."""
        fresh = self.store.tokenizer.encode_ids(doc.text.text)
        if doc.tokens.ids != fresh:
            self.log_message(f"{short_name(doc.uri)}: incremental tokens differ from a fresh tokenization; "
                             "rebuilt", types.MessageType.Error)
            self.store.retokenize(doc)

    def publish(self, doc: Document, analysis) -> None:
        doc.last = analysis
        doc.published += 1
        doc.full_pass_done = True
        self.publish_diagnostics(doc)
        if analysis.settled and self.pull and self.capability("workspace.diagnostics.refresh_support"):
            self.workspace_diagnostic_refresh(None)  # same version, new results: pull again
        self.protocol.notify(CLASSIFICATION, classification_params(analysis))
        self.wake(doc.uri)

    def publish_diagnostics(self, doc: Document) -> None:
        if not self.pull and doc.last is not None:
            codec = self.store.codec
            self.text_document_publish_diagnostics(lsp_publish_diagnostics(doc.last, codec, self.options.diagnostics))

    def clear(self, doc: Document, *, closed: bool = False) -> None:
        """No results for ``doc`` (closed, not analysed, desynced): clear what the client shows."""
        had = doc.last is not None or closed
        doc.last = None
        if had and not self.pull:
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=doc.uri, diagnostics=[], version=None if closed else doc.version)
            )
        self.wake(doc.uri)

    # -- waiting for results (pull diagnostics, hover) -------------------------------------

    def wake(self, uri: str) -> None:
        for future in self._waiters.pop(uri, []):
            if not future.done():
                future.set_result(None)

    def wake_all(self) -> None:
        for uri in list(self._waiters):
            self.wake(uri)

    async def current_analysis(self, uri: str, timeout: float):
        """The analysis of ``uri``'s current revision, waiting up to ``timeout``; None if there is none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            doc = self.store.get(uri)
            if doc.last is not None and doc.last.revision == doc.revision:
                return doc.last
            if not self.analysed(doc) or self.model_state.startswith("failed"):
                return None
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            future = loop.create_future()
            self._waiters.setdefault(uri, []).append(future)
            try:
                await asyncio.wait_for(future, remaining)
            except asyncio.TimeoutError:
                return None

    # -- robustness hooks ---------------------------------------------------------------------

    def desynced(self, doc: Document) -> None:
        self.show_once(
            f"lost track of {short_name(doc.uri)} ({doc.desynced}); its results are withheld until the "
            "client sends the whole text or reopens it", types.MessageType.Warning,
        )
        self.clear(doc)
        self.protocol.notify(RESYNC, {"uri": doc.uri, "version": doc.version, "reason": doc.desynced})

    def malformed_message(self, method: str, params: Any, detail: str) -> None:
        """Called by the protocol for a message it could not deserialize."""
        self.log_message(f"ignored malformed {method} message: {detail}", types.MessageType.Error)
        if method == types.TEXT_DOCUMENT_DID_CHANGE and isinstance(params, dict):
            uri = (params.get("textDocument") or {}).get("uri")
            if isinstance(uri, str) and uri in self.store:
                doc = self.store.get(uri)
                self.store.desync(doc, f"a change could not be read: {detail}")
                self.desynced(doc)


class _Progress:
    """``$/progress`` begin/end around a block, when the client supports it."""

    def __init__(self, server: VqlspServer, title: str):
        self.server, self.title, self.token = server, title, None

    async def __aenter__(self):
        if not self.server.capability("window.work_done_progress"):
            return self
        token = f"vqlsp-{uuid.uuid4()}"
        try:
            await asyncio.wait_for(self.server.work_done_progress.create_async(token), 5.0)
        except Exception:  # a client that refuses progress still gets the work done
            return self
        self.token = token
        self.server.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=self.title))
        return self

    async def __aexit__(self, *exc):
        if self.token is not None:
            self.server.work_done_progress.end(self.token, types.WorkDoneProgressEnd())
            self.server.work_done_progress.tokens.pop(self.token, None)
        return False


class _null:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


def _section(raw: Any) -> Any:
    if isinstance(raw, dict) and SECTION in raw and isinstance(raw[SECTION], (dict, type(None))):
        return raw[SECTION]
    return raw


def _budget_bytes(options: Options) -> int:
    return int(options.memory_budget_mb * 2**20)


def short_name(uri: str) -> str:
    return PurePosixPath(uri).name or uri


def _load(options: Options, dense: bool):
    """Worker thread: the model, its tokenizer, a fresh worker (replacing all cached state)."""
    from vqlsp.model.registry import load_model, load_tokenizer
    from vqlsp.text.tokenizer import TextTokenizer

    from .analysis import engine_available

    model = load_model(options.model, options.device)
    tokenizer = TextTokenizer(load_tokenizer(options.model))
    worker = AnalysisWorker(model, _budget_bytes(options), dense=dense)
    labels = {
        "document": list(model.document_head.labels) if model.document_head else [],
        "span": list(model.span_head.labels) if model.span_head else [],
        "span_unit": model.span_head.unit if model.span_head else None,
        "engine": "incremental" if engine_available() and not dense else "dense",
        "device": str(model.device),
    }
    return worker, tokenizer, labels
