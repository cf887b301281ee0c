"""The vqlsp language server (``vqlsp serve``; DESIGN.md, "The server").

Modules, transport to domain:

    framing.py      stdio/TCP framing in place of pygls's reader: a bad frame is answered and
                    skipped up to the next header; Content-Length capped ($VQLSP_MAX_MESSAGE_BYTES)
    protocol.py     pygls protocol tweaks: our own text sync, answers to malformed messages,
                    diagnosticProvider only for clients that pull
    server.py       VqlspServer (state on the event loop) and one thin handler per method
    options.py      camelCase settings -> nested dataclasses, problems reported, defaults kept
    documents.py    DocumentStore: text (LineIndex) + tokens (TokenizedDocument), versions,
                    revisions, desync; cuts read-only Snapshots
    scheduler.py    per-document debounce / coalescing, one update in flight per document
    worker.py       AnalysisWorker on its own thread: model, per-document analyzers, memory budget
    analysis.py     the Analyzer interface; DenseAnalyzer; open_analyzer picks the engine
    engine_adapter.py  Analyzer over vqlsp.engine.session.IncrementalSession
    memory.py       LRU memory budget over cached states
    diagnostics.py  lsp_* builders: span diagnostics, classification params, document stats
    hover.py        hover markdown
    client.py       a minimal stdio client (demo, benchmark)
    demo.py         ``vqlsp demo``

Protocol (besides standard LSP 3.17: incremental sync, utf-8/16/32 position
encodings, push diagnostics with ``version`` or pull ``textDocument/diagnostic``,
hover, ``$/progress``):

* settings: ``initializationOptions`` and section ``vqlsp`` of
  ``workspace/didChangeConfiguration`` / ``workspace/configuration`` —
  ``model, device, debounceMs, positionPolicy, settleMs, memoryBudgetMb,
  maxDocumentTokens, languages, diagnostics{threshold, severity, unit}`` (see
  ``options.Options``);
* notification ``vqlsp/classification`` after every published update:
  ``{uri, version, label, probabilities, tokens, reused_fraction, ms, textHash,
  analysedTokens, truncated, fullPass, changedTokens, modelMs, engine, spans,
  positionDrift, settled}`` (a ``settled`` update re-indexed drifted position ids
  after a pause, for the same version: ``positionDrift`` 0 means exact-position results);
* notification ``vqlsp/resync`` ``{uri, version, reason}`` when the server can no
  longer trust its copy of a document (a change it could not read or apply):
  results are withheld until the client sends the whole text in a ``didChange``
  (a content change without ``range``) or reopens the document;
* command ``vqlsp.documentStats`` ``[uri]`` -> the last analysis, the current
  text's ``textHash`` / ``tokens`` / ``version``, ``rows_changed_per_layer``,
  span labels, state bytes, budget and evictions, ``updatesStarted`` and
  ``settlesStarted`` (server-wide).
"""
