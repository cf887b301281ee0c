"""A document's analysis, between the server (``lsp/``) and the engine (DESIGN.md, "analysis/").

A document of any length is cut into *sections* of bounded size at paragraph
boundaries; each section is its own incremental session, so a keystroke costs
what its section's update costs, whatever the document's length. The document
label pools the sections' features; span labels come per section.

Modules, in dependency order:

* ``results``    immutable result values (no torch: ``lsp/`` reads them)
* ``sections``   ``SectionMap``: where sections start, kept in step with edits (no torch)
* ``memory``     LRU memory budget over cached section states (no torch)
* ``analyzers``  the ``Analyzer`` interface: the incremental engine's session or a dense re-run
* ``worker``     ``AnalysisWorker``: the model and every section's analyzer, on the inference thread
* ``reference``  the dense reference a document's results must equal (tests, benchmarks)

Only ``analyzers``, ``worker`` and ``reference`` import torch.
"""
