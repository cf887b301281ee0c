"""The vqlsp language server (``vqlsp serve``; DESIGN.md, "The server").

Protocol, scheduling and publishing only: no torch here (the analysis runs in
``vqlsp.analysis`` on the inference thread). Modules, transport to domain:

    framing.py      the base protocol's framing (Content-Length headers), unwedgeable
    protocol.py     pygls protocol tweaks: our own text sync, answers to malformed messages,
                    diagnosticProvider only for clients that pull, notifications sent as JSON text
    server.py       one thin handler per LSP method, and ``serve``
    core.py         VqlspServer: state on the event loop; updates, background builds, publishing
    options.py      camelCase settings -> nested dataclasses, problems reported, defaults kept
    documents.py    DocumentStore: one record per document (text, tokens, sections, versions,
                    what was published, who waits); cuts read-only SectionJobs
    changes.py      didChanges applied in order; a long one a slice at a time, the loop free between
    scheduler.py    per-document debounce / coalescing, one update in flight per document
    jobs.py         the inference thread's priority queue: the active document first
    diagnostics.py  lsp_* builders: span diagnostics (per-label rules, what ignores silence;
                    kept per section as JSON text between pushes), classification params, stats
    hover.py        hover markdown
    actions.py      code actions: ignore this sentence / this label in the file / in the workspace
    ignore_file.py  .vqlsp.json: labels ignored in a workspace folder
    scope.py        excludePatterns and maxFileLength: documents left alone
    heap.py         freed memory handed back to the OS after a burst of closes (malloc_trim)
    footprint.py    bytes of a document's own structures, beside the state budget (on request)
    collector.py    the garbage collector kept off the loop: the model and built documents
                    frozen, pauses metered
    loop_lag.py     how late the event loop wakes up (``serve --loop-lag``, for benchmarks)
    client.py       a minimal stdio client (demo, benchmarks)
    demo.py         ``vqlsp demo``

Protocol (besides standard LSP 3.17: incremental sync, utf-8/16/32 position
encodings, push diagnostics with ``version`` or pull ``textDocument/diagnostic``,
hover, quick-fix ``textDocument/codeAction``, ``$/progress``):

* settings: ``initializationOptions`` and section ``vqlsp`` of
  ``workspace/didChangeConfiguration`` / ``workspace/configuration`` —
  ``model, device, debounceMs, positionPolicy, settleMs, memoryBudgetMb,
  sectionTokens, languages, excludePatterns, maxFileLength,
  diagnostics{threshold, severity, unit, labels}`` (see ``options.Options``);
* notification ``vqlsp/classification`` after every published update:
  ``{uri, version, label, probabilities, tokens, reused_fraction, ms, textHash,
  analysedTokens, truncated, fullPass, changedTokens, modelMs, engine, spans,
  positionDrift, settled, sections, sectionsAnalysed}`` after every update and
  while a document is first analysed. ``version`` is the version the label
  describes: under continuous typing it may be older than the document's (the
  span diagnostics published with it are mapped onto the current text and carry
  the current version). ``textHash`` is the sha256 of that version's text when
  it is the current one and at most 1 Mi characters, else null. A document is
  analysed in ``sections`` (``sectionsAnalysed`` of them so far); a ``settled``
  update re-built drifted sections on exact position ids after a pause, for the
  same version: ``positionDrift`` 0 means exact-position results;
* notification ``vqlsp/resync`` ``{uri, version, reason}`` when the server can no
  longer trust its copy of a document (a change it could not read or apply):
  results are withheld until the client sends the whole text in a ``didChange``
  (a content change without ``range``) or reopens the document;
* command ``vqlsp.documentStats`` ``[uri]`` -> the last analysis, the current
  text's ``textHash`` / ``tokens`` / ``version``, ``rows_changed_per_layer``,
  span labels, ``sections`` (``[tokenStart, tokenEnd]`` each), state bytes,
  budget and evictions, ``updatesStarted``, ``settlesStarted`` and
  ``resultsDropped`` (server-wide); ``compute`` (the last update's layers
  recomputed per token, ``rowsPerToken``, and ACM ``learnersPerRow``) and each
  span's own ``compute`` on its last update; ``[uri, {line, character}]`` adds
  ``computeAtCursor``, the sentence at that position (issue 15); ``focus`` (where the
  server takes the writer to be, in code points: their last edit or code-action
  request; builds start there); ``changesSliced``
  (didChanges applied in more than one slice), ``gc`` (collections and the longest,
  per generation);
* command ``vqlsp.documentFootprint`` ``[uri]`` -> ``textBytes``, what the document's own
  text, tokens, sections and diagnostics hold beside the state budget, and
  ``textBytesByPart`` per part (``footprint``; a walk over all of them, so asked apart);
* command ``vqlsp.ignoreLabelInWorkspace`` ``[label, uri]`` (what the workspace code
  action runs) -> ``{ignored, file}``: the label is added to ``.vqlsp.json`` of the
  workspace folder holding ``uri``, and every document's diagnostics are republished.
"""
