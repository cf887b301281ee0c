"""The server's state and orchestration: options, documents, scheduling, publishing.

State has one owner. ``VqlspServer`` runs on the event loop: it changes the
documents (``DocumentStore``) on didOpen/didChange/didClose and decides what the
inference thread (``jobs.JobQueue``) does, one short job at a time:

* an *update* (the scheduler's callback, at most one per document in flight):
  every section the writer edited gets one job with its edits, and when they
  are done the results are published, whatever happened meanwhile. Results
  computed on an older revision are published too, stamped with their own
  version, with their span diagnostics mapped onto the current text (or
  withheld where a later change touched them): under continuous typing the
  client sees a result every update, never silence until the writer pauses;
* a *build* (a background task per document): sections never analysed (a newly
  opened document, however long) and, once the writer pauses, sections whose
  position ids drifted (a settle) get a fresh state, a section per job, built a
  chunk of tokens at a time.

Jobs of the document being typed in run first (``FOREGROUND``); builds and other
documents' updates wait behind them (``BACKGROUND``), and as a build gives way
after any layer once another job is queued, a keystroke waits for at most one
layer of one chunk.

The LSP handlers that drive it are in ``server.py``; the custom protocol parts
are listed in ``vqlsp.lsp``'s docstring.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace.position_codec import PositionCodec

from vqlsp import __version__
from vqlsp.analysis.results import SectionResult, UpdateCost
from vqlsp.analysis.sections import nearest
from vqlsp.text.positions import LineIndex

from .changes import ChangeApplier
from .collector import CollectionMeter, freeze_long_lived, freeze_survivors
from .diagnostics import (
    CLASSIFICATION,
    RESYNC,
    Silence,
    classification_params,
    document_silence,
    publish_diagnostics_json,
)
from .documents import (
    INDEX_OFF_LOOP_CHARS,
    ChangeReport,
    Document,
    DocumentStore,
    Publication,
    UnknownDocument,
    tokenize_and_cut,
)
from .heap import HeapRelease, glibc_malloc_trim
from .ignore_file import WorkspaceIgnores
from .jobs import BACKGROUND, FOREGROUND, JobQueue
from .options import SECTION, Options, changed_fields, merge_settings, parse_options
from .protocol import VqlspProtocol
from .scheduler import Clock, Scheduler
from .scope import Excludes, too_long_message, uri_path

log = logging.getLogger(__name__)

STATS_COMMAND = "vqlsp.documentStats"
FOOTPRINT_COMMAND = "vqlsp.documentFootprint"
RESULT_WAIT_S = 60.0  # how long a pull / hover waits for the current version's results
HOVER_WAIT_S = 2.0
# Tokens appended per chunk of a background build. A build gives way to any queued job after
# every layer (``worker.build_step``), so a keystroke waits for one layer of one chunk, and the
# chunk is as long as that allows. Measured (SmolLM2, 12 layers, one thread, thread CPU time,
# load ~6): a layer of a 64-token chunk 9-12 ms, of a 128-token one 17-23 ms (up to ~40 where
# the state's buffers grow); a 256-token section built in 64-token chunks 1.4x a dense forward
# of it, in 128-token ones 1.2x, in one chunk 1.1x.
BUILD_CHUNK_TOKENS = 128
# ... and once nobody has typed for IDLE_AFTER_S (longer than the default settleMs, so a settle
# keeps the short chunks), chunks of a whole default section: a 100k-token document was built
# in 147 s instead of 170 s (a dense pass over its sections: 135 s); a keystroke that ends the
# pause waits for one layer of such a chunk
IDLE_BUILD_CHUNK_TOKENS = 256
IDLE_AFTER_S = 5.0
BUILD_PUBLISH_S = 0.5  # while building, publish at most this often (and when done)
# Background builds (first passes, settles) wait until no keystroke came for this long: while
# someone types, the inference thread is theirs (measured on a 2 MB document being built:
# a key every 100 ms waited for a build chunk before its own update, p50 254 ms)
TYPING_QUIET_S = 0.3
DIAGNOSTICS_SPACING = 4.0  # diagnostics pushes of a document at most every 4x what one costs
# ... and at most as often as a client can take them in: parse the JSON and show it (a Python
# client took 50-90 ms of CPU for the 1.3 MB a 100k-token document's push carries, under load)
CLIENT_DIAGNOSTICS_BYTES_PER_S = 10e6
CONFIGURATION_WAIT_S = 5.0  # for the client's answer to workspace/configuration
HASH_LIMIT_CHARS = 1 << 20  # textHash is sent for texts up to this size (hashing is O(length))
CHECK_TOKENS = os.environ.get("VQLSP_CHECK_TOKENS") == "1"


class VqlspServer(LanguageServer):
    def __init__(self, *, dense: bool = False):
        super().__init__("vqlsp", __version__, protocol_cls=VqlspProtocol, max_workers=2)
        self.dense = dense  # force the dense analyzer (benchmark baseline)
        self.options = Options()
        self.init_settings: Any = None
        self.shown_problems: set[str] = set()
        self.store = DocumentStore(PositionCodec(), self.options.section_tokens)
        self.changes = ChangeApplier(self.store, self.changed, self.unknown_change)  # didChange, in order
        self.scheduler = Scheduler(self.run_update, on_quiet=self.settle)
        self.jobs = JobQueue()  # the inference thread; never pygls's pool
        # freed memory back to the OS, once a burst of closes is over (behind their drops)
        self.heap = HeapRelease(lambda trim: self.jobs.submit(BACKGROUND, trim), glibc_malloc_trim())
        self.collections = CollectionMeter().install()  # collector pauses (stats)
        self.text_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vqlsp-text")  # long opens
        self.worker: Any = None  # vqlsp.analysis.worker.AnalysisWorker, once a model is loaded
        self.builders: dict[str, asyncio.Task] = {}  # uri -> its background build
        self.active: str | None = None  # the document last typed in: its jobs go first
        self.typed_at = float("-inf")  # loop time of the last keystroke, any document
        self.model_labels: dict[str, Any] = {}
        self.model_state = "not loaded"  # "loading" | "ready" | "failed: ..."
        self.generation = 0  # bumps when a new model is in place; older results are dropped
        self.loads = 0  # model loads started: only the last one's outcome counts
        self.config_generation = 0  # bumps when diagnostics options change (pull result ids)
        self.pull = False
        self.settles = 0  # settles started, all documents (stats)
        self.dropped = 0  # results computed but not published: their document closed or model changed
        self._load_task: asyncio.Task | None = None
        self.folders: list[Path] = []  # workspace folders (local paths), from initialize
        self.ignores = WorkspaceIgnores()  # labels each folder's .vqlsp.json ignores
        self.excludes = Excludes((), [])
        # Background builds take turns a section at a time: interleaved chunk by chunk, 5,000
        # opened documents each held a half-built state at once (RSS 5.8 GiB, none of it in
        # the memory budget, which counts installed states)
        self.building = asyncio.Lock()
        self._clock: Clock | None = None  # None: the running event loop (tests pass a fake one)

    @property
    def clock(self) -> Clock:
        return self._clock if self._clock is not None else asyncio.get_running_loop()

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
        self.excludes = Excludes(options.exclude_patterns, self.folders)
        if "section_tokens" in changed or not act:
            self.store.recut_all(options.section_tokens)
        crossed: list[Document] = []  # documents now over maxFileLength, or back under it
        if not act:
            self.store.max_chars = options.max_file_length
        elif "max_file_length" in changed:
            crossed = self.store.set_max_chars(options.max_file_length)
        if not changed or not act:
            return
        self.log_message(f"options changed: {', '.join(sorted(changed))}")
        if changed & {"model", "device", "heads"}:
            self.start_loading(keep_model=not changed & {"model", "device"})
            return
        if "memory_budget_mb" in changed and self.worker is not None:
            self.jobs.submit(BACKGROUND, self.worker.set_budget, _budget_bytes(options))
        if changed & {"position_policy", "section_tokens", "languages", "diagnostics.unit", "exclude_patterns"}:
            self.reanalyse_all()
            return
        if changed & {"diagnostics.threshold", "diagnostics.severity", "diagnostics.labels"}:
            self.config_generation += 1
            self.republish_all()
        self.reanalyse(crossed)  # analysed from scratch, or cleared with one message; the others untouched

    async def pull_configuration(self) -> None:
        """Ask the client for our settings section; a client that declares
        ``workspace/configuration`` but never answers is given ``CONFIGURATION_WAIT_S``, then
        the server goes on with what it has (initializationOptions, defaults), with one log line."""
        if not self.capability("workspace.configuration"):
            return
        request = asyncio.ensure_future(self.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        ))
        timed_out = False

        def give_up() -> None:
            nonlocal timed_out
            timed_out = True
            request.cancel()

        timer = self.clock.call_later(CONFIGURATION_WAIT_S, give_up)
        try:
            result = await request
        except asyncio.CancelledError:
            if not timed_out:
                raise
            self.log_message(f"the client did not answer workspace/configuration within {CONFIGURATION_WAIT_S:g} s; "
                             "using initializationOptions and defaults", types.MessageType.Warning)
            return
        except Exception as exc:  # the client's answer is outside our control
            self.log_message(f"workspace/configuration failed: {exc}", types.MessageType.Warning)
            return
        finally:
            timer.cancel()
        if result and isinstance(result[0], dict):
            self.apply_settings(result[0])

    # -- the model -----------------------------------------------------------------------

    def start_loading(self, *, keep_model: bool = False) -> None:
        """Load the model and its extra heads (``keep_model``: only the heads changed, so the
        loaded model serves the new heads; every document is analysed again either way)."""
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        self.model_state = "loading"
        model = self.worker.model if keep_model and self.worker is not None else None
        self._load_task = asyncio.get_running_loop().create_task(self.load_model(model))

    async def load_model(self, model: Any = None) -> None:
        options = self.options
        self.loads += 1
        load = self.loads
        self.model_state = "loading"
        where = options.model or "the default model"
        async with self.progress(f"vqlsp: loading {where}"):
            try:
                worker, tokenizer, labels = await self.jobs.run(FOREGROUND, _load, options, self.dense, model)
            except Exception as exc:  # bad checkpoint, missing weights, no CUDA: tell the user
                if load == self.loads:
                    keep = " (still using the previous model)" if self.worker is not None else ""
                    self.model_state = "ready" if self.worker is not None else f"failed: {exc}"
                    self.show_once(f"cannot load the model ({where}): {exc}{keep}", types.MessageType.Error)
                    self.wake_all()
                return
        if load != self.loads:
            return
        # Only now do results of the previous model go stale: until a new model is in place, the
        # old one keeps serving (an update running while a bad ``model`` arrives still publishes).
        self.generation += 1
        self.worker, self.model_labels, self.model_state = worker, labels, "ready"
        for problem in labels.pop("problems"):
            self.show_once(problem, types.MessageType.Error)
        self.heap.soon()  # the previous model and its states, if any
        self.store.set_tokenizer(tokenizer)
        freeze_long_lived()  # the model lives until the next load: out of the collector's way
        self.log_message(f"model ready ({where}, {labels.get('engine')} engine)")
        self.reanalyse_all(drop=False)

    def progress(self, title: str) -> _Progress:
        return _Progress(self, title)

    # -- what to analyse ---------------------------------------------------------------

    def analysed(self, doc: Document) -> bool:
        return (doc.language_id in self.options.languages and not doc.binary and doc.desynced is None
                and not self.store.too_long(doc) and not self.excludes.excluded(doc.uri))

    def explain_skip(self, doc: Document) -> None:
        """One message for a document left alone because of its length (or, in the log, its path)."""
        if self.store.too_long(doc) and doc.language_id in self.options.languages:
            self.show_once(too_long_message(short_name(doc.uri), self.options.max_file_length), types.MessageType.Info)
        elif self.excludes.excluded(doc.uri):
            self.log_message(f"{short_name(doc.uri)} matches excludePatterns: not analysed")

    def silence(self, doc: Document) -> Silence:
        """What the ignore comments and the workspace's ``.vqlsp.json`` silence in ``doc``."""
        return document_silence(doc, self.ignores.labels_for(uri_path(doc.uri)))

    def unit(self) -> str:
        return self.options.diagnostics.unit or self.model_labels.get("span_unit") or "sentence"

    def changed(self, report: ChangeReport) -> None:
        """A ``didChange`` is applied (``changes.ChangeApplier``): log, resync, analyse."""
        doc = report.document
        for warning in report.warnings:
            self.log_message(f"{short_name(doc.uri)}: {warning}", types.MessageType.Warning)
        if report.desynced_now:
            self.desynced(doc)
            return
        if report.resynced_now:
            self.log_message(f"{short_name(doc.uri)}: whole text received; back in sync", types.MessageType.Info)
            self.opened(doc)
        elif report.retokenized:  # crossed maxFileLength
            self.opened(doc)
        self.request_update(doc, typed=True)

    def unknown_change(self, exc: UnknownDocument) -> None:
        self.log_message(f"ignored a change: {exc}", types.MessageType.Warning)

    def request_update(self, doc: Document, *, typed: bool = False) -> None:
        """``doc`` changed (``typed``: by the writer, so it becomes the active document)."""
        if typed:
            self.active = doc.uri
            self.typed_at = self.clock.time()
            doc.settle_wanted = False  # the writer is not paused after all
        if not self.analysed(doc):
            if doc.last is not None:
                self.explain_skip(doc)
            self.clear(doc)
        elif self.worker is not None:
            self.scheduler.request(doc.uri)

    def open_document(self, item: types.TextDocumentItem) -> None:
        """``didOpen``. A long text's line index is built on the text thread, so the open does
        not hold the event loop (10 M characters: ~70-100 ms); until it is in place the
        document's ``didChange``s queue and requests about it wait (``ChangeApplier.after``)."""
        reopened = item.uri in self.store
        if len(item.text) <= INDEX_OFF_LOOP_CHARS:
            self.changes.discard(item.uri)  # changes still pending for the text this one replaces
            self._open(item, reopened, None)
            return

        async def index_then_open() -> None:
            index = await asyncio.get_running_loop().run_in_executor(self.text_thread, LineIndex, item.text)
            self._open(item, reopened, index)

        self.changes.after(item.uri, index_then_open)

    def _open(self, item: types.TextDocumentItem, reopened: bool, index: LineIndex | None) -> None:
        doc = self.store.open(item.uri, item.language_id, item.version, item.text, index)
        if reopened:
            self.log_message(f"{short_name(item.uri)} opened again; its text replaces the server's", types.MessageType.Warning)
        if doc.binary:
            self.log_message(f"{short_name(item.uri)} holds NUL characters (binary?); not analysed", types.MessageType.Warning)
        self.opened(doc)

    def opened(self, doc: Document) -> None:
        """``doc`` was opened, reloaded or re-cut: analyse it from scratch, in the background."""
        if doc.tokenizing:
            self.tokenize_in_background(doc)
        elif not self.analysed(doc):
            self.explain_skip(doc)
            self.clear(doc)
        elif doc.sections is not None and not doc.sections.sections and self.worker is not None:
            self.scheduler.request(doc.uri, immediate=True)  # nothing to build: publish the prior
        else:
            self.ensure_building(doc)

    def tokenize_in_background(self, doc: Document) -> None:
        """A long text is tokenized and cut on the text thread, so that opening it never holds
        the event loop; changes meanwhile are replayed on the result (``DocumentStore.attach``)."""
        ticket, text, tokenizer = doc.tokenizing, doc.text.text, self.store.tokenizer
        target, language = self.store.section_tokens, doc.language_id

        async def tokenize() -> None:
            loop = asyncio.get_running_loop()
            try:
                tokens, lengths = await loop.run_in_executor(
                    self.text_thread, tokenize_and_cut, text, tokenizer, target, language
                )
            except Exception as exc:  # the boundary of the text thread: log; a reopen tries again
                log.exception("tokenizing %s failed", doc.uri)
                self.log_message(f"cannot tokenize {short_name(doc.uri)}: {exc}", types.MessageType.Error)
                return
            if self.store.documents.get(doc.uri) is doc and self.store.attach(doc, ticket, tokens, lengths):
                freeze_survivors()  # its tokens stay (a build may wait while the writer types)
                self.opened(doc)
                if any(s.urgent for s in doc.sections.sections):  # typed into while being tokenized
                    self.scheduler.request(doc.uri)

        asyncio.get_running_loop().create_task(tokenize())

    def reanalyse_all(self, *, drop: bool = True) -> None:
        """Every document from scratch (new model, new position policy or span unit)."""
        self.reanalyse(list(self.store.documents.values()), drop=drop)

    def reanalyse(self, docs: list[Document], *, drop: bool = True) -> None:
        """These documents from scratch (``drop``: their states on the worker first)."""
        for doc in docs:
            if drop and self.worker is not None:
                self.jobs.submit(BACKGROUND, self.worker.drop, doc.uri)
            if doc.sections is not None:
                doc.sections.reset(doc.revision)
            self.opened(doc)

    def republish_all(self) -> None:
        for doc in self.store.documents.values():
            if doc.last is not None:
                self.publish_diagnostics(doc)
        if self.pull and self.capability("workspace.diagnostics.refresh_support"):
            self.workspace_diagnostic_refresh(None)

    def settle(self, uri: str) -> None:
        """The scheduler's quiet callback: the writer paused, so sections whose published
        results were computed on drifted (``stable``) position ids get a fresh state on exact
        ids, in the background, a chunk at a time (a keystroke meanwhile goes first)."""
        doc = self.store.documents.get(uri)
        if doc is None or not self.analysed(doc) or doc.last is None or not doc.last.drift:
            return
        doc.settle_wanted = True
        self.settles += 1
        self.ensure_building(doc)

    # -- updates: the sections the writer edited -------------------------------------------

    async def run_update(self, uri: str) -> None:
        """The scheduler's callback: one job per edited section, then publish."""
        doc = self.store.documents.get(uri)
        worker, generation = self.worker, self.generation
        if doc is None or not self.analysed(doc) or worker is None or doc.sections is None:
            return
        if CHECK_TOKENS:
            self.check_tokens(doc)
        priority = FOREGROUND if uri == self.active else BACKGROUND
        self.forget_sections(doc, priority)
        options, unit = self.options, self.unit()
        # Each section's job is cut when its turn comes (a copy of its tokens and text): cut all
        # at once, the ~400 sections a replace-all touches in a 100k-token document held the loop
        edited = [s.id for s in doc.sections.sections if s.urgent]
        results: list[SectionResult] = []
        retry = False
        last = next((s.id for s in reversed(doc.sections.sections) if s.result is not None), None)
        for i, section_id in enumerate(edited):
            k = doc.sections.find(section_id)
            if doc.applying or k is None or not doc.sections.sections[k].urgent:
                continue  # half-changed text, or a section gone or already taken: a later update has it
            job = self.store.job(doc, k, unit=unit, position_policy=options.position_policy)
            label_last = last if i == len(edited) - 1 else None  # the label comes with the last job
            try:
                result = await self.jobs.run(priority, worker.update, job, label_last=label_last)
            except Exception as exc:  # the update boundary: log, rebuild the section next time
                log.exception("update of %s failed", uri)
                self.log_message(f"update of {short_name(uri)} failed ({exc}); rebuilding it", types.MessageType.Error)
                if (k := doc.sections.find(job.section)) is not None:
                    doc.sections.put_back(k, doc.revision)
                    retry = retry or job.batches is not None  # a rebuild that fails is not retried
                continue
            if not self.still(doc, generation):
                self.dropped += 1
                return
            self.record(doc, result)
            results.append(result)
            doc.focused = result.section  # the worker keeps the last section updated first
        if results or (not doc.sections.sections and (doc.last is None or doc.last.revision != doc.revision)):
            await self.publish(doc, results, priority)  # (an empty document: the head's prior)
        if retry:
            self.scheduler.request(uri)  # once more, from the section's tokens (no retry loop: one rebuild)
        self.ensure_building(doc)

    def record(self, doc: Document, result: SectionResult) -> bool:
        """Keep a section's result (False: the section is gone, merged or cut again)."""
        for note in result.notes:
            self.log_message(note, types.MessageType.Warning if result.resynced else types.MessageType.Info)
        k = doc.sections.find(result.section) if doc.sections is not None else None
        if k is None:
            self.dropped += 1
            return False
        doc.sections.sections[k].record(result)
        return True

    def still(self, doc: Document, generation: int) -> bool:
        """``doc`` is still open (the same record) under the same model."""
        return self.store.documents.get(doc.uri) is doc and generation == self.generation

    def forget_sections(self, doc: Document, priority: int) -> None:
        """Tell the worker which sections are gone, ahead of any job of ``priority`` that
        follows (a document label must not pool a section that no longer exists)."""
        if doc.forgotten and self.worker is not None:
            self.jobs.submit(priority, self.worker.forget_sections, doc.uri, doc.forgotten)
            doc.forgotten = []

    def check_tokens(self, doc: Document) -> None:
        """Debug check (VQLSP_CHECK_TOKENS=1): the incremental tokens equal a fresh tokenization,
        and the sections tile them and the text."""
        fresh = self.store.tokenizer.encode_ids(doc.text.text)
        sections = doc.sections
        tiled = sections.token_starts[-1] == len(fresh) and sections.char_starts[-1] == doc.tokens.n_chars
        if doc.tokens.ids != fresh or not tiled:
            self.log_message(f"{short_name(doc.uri)}: incremental tokens differ from a fresh tokenization, or "
                             "the sections from the tokens; rebuilt", types.MessageType.Error)
            self.store.retokenize(doc)

    # -- builds: first passes and settles, in the background ----------------------------------

    def ensure_building(self, doc: Document) -> None:
        task = self.builders.get(doc.uri)
        if task is not None and not task.done():
            return
        if self.worker is None or not self.analysed(doc) or self.next_build(doc) is None:
            return
        self.builders[doc.uri] = asyncio.get_running_loop().create_task(self._guarded_build(doc))

    async def _guarded_build(self, doc: Document) -> None:
        try:
            await self.build(doc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the build boundary: log; the next update or open starts again
            log.exception("building %s failed", doc.uri)
            self.log_message(f"analysing {short_name(doc.uri)} failed: {exc}", types.MessageType.Error)

    def focus(self, doc: Document, offset: int) -> None:
        """The writer's cursor is at code point ``offset`` (a code action's range): builds start
        there, and if it is in another section than the one the worker keeps first, that one
        gets its state back (evicted by the memory budget while the writer was elsewhere)."""
        doc.focus = offset
        sections = doc.sections
        if sections is None or not sections.sections or self.worker is None:
            return
        section = sections.sections[sections.at_char(offset)]
        if section.id != doc.focused and section.result is not None and not section.urgent:
            doc.warm_wanted = True
            self.ensure_building(doc)

    def next_build(self, doc: Document) -> tuple[int, str] | None:
        """``(section index, kind)`` of the next section to build: ``"first"``, a section never
        analysed, the nearest to the writer's focus first (so the part of a long document they
        look at is ready first, and the section they type in is built, not passed over); then
        ``"warm"``, the focus section once the cursor moved into it (``focus``); then, if the
        writer paused, ``"settle"``, a section whose position ids drifted."""
        if doc.sections is None or not doc.sections.sections:
            return None
        sections = doc.sections.sections
        here = doc.sections.at_char(doc.focus) if doc.focus is not None else 0
        if unbuilt := [k for k, s in enumerate(sections) if s.result is None and not s.urgent]:
            return nearest(unbuilt, here), "first"
        if doc.warm_wanted:  # (the build that takes it sets ``focused``, which ends it)
            s = sections[here]
            if s.id != doc.focused and s.result is not None and not s.urgent:
                return here, "warm"
            doc.warm_wanted = False
        if doc.settle_wanted:
            for k, s in enumerate(sections):
                if s.result is not None and s.result.drift and not s.urgent and s.valid_until is None:
                    return k, "settle"
            doc.settle_wanted = False
        return None

    async def build(self, doc: Document) -> None:
        worker, generation = self.worker, self.generation
        total = sum(1 for s in doc.sections.sections if s.result is None) if doc.sections else 0
        progress = self.progress(f"vqlsp: analysing {short_name(doc.uri)} ({doc.n_tokens} tokens)")
        if total > 1:
            await progress.begin()
        built: list[SectionResult] = []  # every section this build finished
        last_publish, published = asyncio.get_running_loop().time(), 0
        try:
            while self.still(doc, generation) and self.analysed(doc) and (nxt := self.next_build(doc)) is not None:
                async with self.building:  # one section's build at a time, over all documents
                    if not self.still(doc, generation) or (nxt := self.next_build(doc)) is None:
                        continue  # (changed while waiting: the loop's condition decides)
                    k, kind = nxt
                    section = doc.sections.sections[k]
                    job = self.store.job(doc, k, unit=self.unit(), position_policy=self.options.position_policy, take=False)
                    edits = section.edits
                    focus = doc.focus is not None and k == doc.sections.at_char(doc.focus)
                    if focus:
                        doc.focused = section.id
                    while True:
                        await self.typing_pause()
                        chunk = self.build_chunk()
                        if kind == "warm":
                            step = await self.jobs.run(BACKGROUND, worker.warm, job, chunk, give_way=self.jobs.waiting)
                        else:
                            step = await self.jobs.run(BACKGROUND, worker.build_step, job, chunk,
                                                     settle=kind == "settle", give_way=self.jobs.waiting, focus=focus)
                        if not self.still(doc, generation):
                            return
                        moved = doc.sections.find(job.section)
                        if step.abandoned or moved is None or doc.sections.sections[moved].edits != edits:
                            if step.result is not None:
                                self.dropped += 1
                            break  # the writer changed it meanwhile (the update of that change has it), or
                            # a warm-up found the state in place
                        if step.result is None:
                            continue
                        doc.sections.take(moved)  # its state now matches its tokens: nothing pending
                        self.record(doc, step.result)
                        built.append(step.result)
                        break
                if total > 1:
                    done = len([s for s in doc.sections.sections if s.result is not None])
                    progress.report(f"{done}/{len(doc.sections)} sections", 100 * done // max(len(doc.sections), 1))
                now = asyncio.get_running_loop().time()
                if built and now - last_publish >= BUILD_PUBLISH_S:  # (``built`` is cumulative:
                    await self.publish(doc, built, BACKGROUND)  # the last publication covers it all)
                    last_publish, published = now, len(built)
                    freeze_survivors()  # what is built stays: out of the collector's way
            if len(built) > published and self.still(doc, generation):
                await self.publish(doc, built, BACKGROUND)
                freeze_survivors()
        finally:
            await progress.end()

    def build_chunk(self) -> int:
        """Tokens a build appends per chunk now: short while someone may type, a whole section
        once nobody has for ``IDLE_AFTER_S``."""
        return BUILD_CHUNK_TOKENS if self.clock.time() - self.typed_at < IDLE_AFTER_S else IDLE_BUILD_CHUNK_TOKENS

    async def typing_pause(self) -> None:
        """Wait until nobody has typed for ``TYPING_QUIET_S`` (background work gives way)."""
        clock = self.clock
        while (wait := self.typed_at + TYPING_QUIET_S - clock.time()) > 0:
            woken = asyncio.get_running_loop().create_future()
            clock.call_later(wait, _resolve, woken)
            await woken

    # -- publishing ------------------------------------------------------------------------------

    async def publish(self, doc: Document, results: list[SectionResult], priority: int) -> None:
        """The document's classification (pooled over every analysed section, stamped with the
        newest version all of them hold for) and its span diagnostics on the current text."""
        if doc.applying:
            return  # its text is between two versions: the update that follows the change publishes
        sections = doc.sections
        worker, generation = self.worker, self.generation
        labels = results[-1].labels if results and not doc.forgotten else None
        if labels is None:  # not computed with the update (a build, a section gone meanwhile)
            last = next((s.id for s in reversed(sections.sections) if s.result is not None), None)
            self.forget_sections(doc, priority)
            try:
                labels = await self.jobs.run(priority, worker.document, doc.uri, last)
            except Exception:  # the publication boundary: the next update publishes again
                log.exception("document head of %s failed", doc.uri)
                return
            if not self.still(doc, generation):
                self.dropped += 1
                return
            if doc.applying:
                return  # a change began meanwhile
        revision = sections.published_revision(doc.revision)
        analysed = [s for s in sections.sections if s.result is not None]
        # (comprehensions over the sections, never a generator: a step per section, not a call)
        current: list[SectionResult] = [s.result for s in analysed]  # type: ignore[misc]
        text_hash = None
        if revision == doc.revision and len(doc.text) <= HASH_LIMIT_CHARS:
            text_hash = hashlib.sha256(doc.text.text.encode("utf-8", "surrogatepass")).hexdigest()
        doc.last = Publication(
            version=doc.version_at(revision), revision=revision, label=labels[0] if labels else None, heads=labels,
            cost=_round_cost(results, doc.n_tokens, worker.model.cfg.depth),
            changed_tokens=sum(r.changed_tokens for r in results), ms=sum(r.ms for r in results), engine=worker.engine,
            drift=max([r.drift for r in current], default=0),
            settled=any(r.settled for r in results), sections=len(sections), sections_analysed=len(analysed),
            analysed_tokens=sum([s.tokens for s in analysed]), tokens=doc.n_tokens, text_hash=text_hash,
        )
        doc.published += 1
        doc.forget_versions_before(revision)
        # The label first: it is small, and what a status bar shows; the span diagnostics of a
        # long document are many.
        self.protocol.notify(CLASSIFICATION, classification_params(doc.uri, doc.last, sum([len(r.spans) for r in current])))
        self.publish_diagnostics(doc)
        if doc.last.settled and self.pull and self.capability("workspace.diagnostics.refresh_support"):
            self.workspace_diagnostic_refresh(None)  # same version, new results: pull again
        self.wake(doc)

    def publish_diagnostics(self, doc: Document) -> None:
        """Push ``doc``'s span diagnostics, or soon: LSP sends all of a document's diagnostics
        each time, which for a long document (thousands of sentences) costs far more than its
        label. Pushes are spaced (``push_spacing``) so that they take at most a fifth of the
        event loop and the client is not sent more than it can read; the one sent when the
        wait ends is the latest."""
        if self.pull or doc.last is None or doc.diagnostics_timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = doc.diagnostics_next - loop.time()
        if wait > 0:
            doc.diagnostics_timer = loop.call_later(wait, self._push_diagnostics, doc)
        else:
            self._push_diagnostics(doc)

    def _push_diagnostics(self, doc: Document) -> None:
        doc.diagnostics_timer = None
        if self.pull or doc.last is None or self.store.documents.get(doc.uri) is not doc or doc.applying:
            return  # cleared or closed meanwhile, or a change half applied (its update publishes)
        started = time.perf_counter()
        params = publish_diagnostics_json(doc, self.store.codec, self.options.diagnostics, self.unit(), self.silence(doc))
        self.protocol.notify_json_text(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, params)
        spacing = push_spacing(time.perf_counter() - started, sum(len(piece) for piece in params))
        doc.diagnostics_next = asyncio.get_running_loop().time() + spacing

    def clear(self, doc: Document, *, closed: bool = False) -> None:
        """No results for ``doc`` (closed, not analysed, desynced): clear what the client shows."""
        if doc.diagnostics_timer is not None:
            doc.diagnostics_timer.cancel()
            doc.diagnostics_timer = None
        had = doc.last is not None or closed
        doc.last = None
        if had and not self.pull:
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=doc.uri, diagnostics=[], version=None if closed else doc.version)
            )
        self.wake(doc)

    def closed(self, doc: Document) -> None:
        self.changes.discard(doc.uri)
        self.scheduler.forget(doc.uri)
        if (task := self.builders.pop(doc.uri, None)) is not None:
            task.cancel()
        if self.worker is not None:
            self.jobs.submit(BACKGROUND, self.worker.drop, doc.uri)
        if self.active == doc.uri:
            self.active = None
        self.clear(doc, closed=True)
        self.heap.soon()

    # -- waiting for results (pull diagnostics, hover) -------------------------------------

    @staticmethod
    def wake(doc: Document) -> None:
        for future in doc.waiters:
            if not future.done():
                future.set_result(None)
        doc.waiters.clear()

    def wake_all(self) -> None:
        for doc in self.store.documents.values():
            self.wake(doc)

    async def current_analysis(self, uri: str, timeout: float) -> Publication | None:
        """The complete publication of ``uri``'s current revision, waiting up to ``timeout``;
        None if there is none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            doc = self.store.get(uri)
            if doc.last is not None and doc.last.revision == doc.revision and doc.last.complete:
                return doc.last
            if not self.analysed(doc) or self.model_state.startswith("failed"):
                return None
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            future = loop.create_future()
            doc.waiters.append(future)
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


def push_spacing(cost_s: float, payload_bytes: int) -> float:
    """Seconds before a document's next diagnostics push, after one that took ``cost_s`` of
    the event loop and sent ``payload_bytes``."""
    return max(DIAGNOSTICS_SPACING * cost_s, payload_bytes / CLIENT_DIAGNOSTICS_BYTES_PER_S)


def _round_cost(results: list[SectionResult], tokens: int, depth: int) -> UpdateCost:
    """The work of some section updates, over the whole document: rows the untouched
    sections did not recompute count as reused."""
    rows = [sum(r.cost.rows_changed_per_layer[i] for r in results if i < len(r.cost.rows_changed_per_layer))
            for i in range(depth)]
    full = bool(results) and all(r.cost.full_pass for r in results) and sum(r.tokens for r in results) >= tokens
    counted = [r.cost.learners for r in results if r.cost.learners is not None]
    learners = sum(counted) if counted else None
    return UpdateCost(full, tokens, tuple(rows), sum(r.cost.ms for r in results), learners=learners)


class _Progress:
    """``$/progress`` begin/report/end, when the client supports it (``async with`` or by hand)."""

    def __init__(self, server: VqlspServer, title: str):
        self.server, self.title, self.token = server, title, None

    async def begin(self) -> None:
        if not self.server.capability("window.work_done_progress"):
            return
        token = f"vqlsp-{uuid.uuid4()}"
        try:
            await asyncio.wait_for(self.server.work_done_progress.create_async(token), 5.0)
        except Exception:  # a client that refuses progress still gets the work done
            return
        self.token = token
        self.server.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=self.title, percentage=0))

    def report(self, message: str, percentage: int) -> None:
        if self.token is not None:
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    async def end(self) -> None:
        if self.token is not None:
            self.server.work_done_progress.end(self.token, types.WorkDoneProgressEnd())
            self.server.work_done_progress.tokens.pop(self.token, None)
            self.token = None

    async def __aenter__(self) -> _Progress:
        await self.begin()
        return self

    async def __aexit__(self, *exc) -> bool:
        await self.end()
        return False


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _section(raw: Any) -> Any:
    if isinstance(raw, dict) and SECTION in raw and isinstance(raw[SECTION], (dict, type(None))):
        return raw[SECTION]
    return raw


def _budget_bytes(options: Options) -> int:
    return int(options.memory_budget_mb * 2**20)


def short_name(uri: str) -> str:
    return PurePosixPath(uri).name or uri


def _load(options: Options, dense: bool, model: Any = None):
    """Inference thread: the model (unless given), its extra heads, its tokenizer, a fresh
    worker (replacing all cached state). An extra head that cannot be served is left out,
    with a problem message; the model's own heads are served whatever the extra ones do."""
    from vqlsp.analysis.worker import AnalysisWorker
    from vqlsp.model.head_files import HeadFileError, load_extra_heads
    from vqlsp.model.registry import load_model, load_tokenizer
    from vqlsp.text.tokenizer import TextTokenizer

    model = model if model is not None else load_model(options.model, options.device)
    tokenizer = TextTokenizer(load_tokenizer(options.model))
    extra, problems = [], []
    for path in options.heads:
        try:
            extra += load_extra_heads(model, [path], taken={h.name for h in extra})
        except HeadFileError as exc:
            problems.append(f"cannot serve the head {path}: {exc}")
    worker = AnalysisWorker(model, _budget_bytes(options), dense=dense, extra_heads=extra,
                            release_memory=glibc_malloc_trim())
    labels = {
        "document": list(model.document_head.labels) if model.document_head else [],
        "span": list(model.span_head.labels) if model.span_head else [],
        "span_unit": model.span_head.unit if model.span_head else None,
        "heads": [{"name": h.name, "kind": h.kind, "labels": list(h.labels)}
                  for h in worker.document_heads + worker.span_heads],
        "engine": worker.engine,
        "device": str(model.device),
        "problems": problems,
    }
    return worker, tokenizer, labels
