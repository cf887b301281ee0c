"""Incremental inference over a VQ transformer (DESIGN.md, "The incremental algorithm").

This package's ``__init__`` imports nothing heavy: ``vqlsp.text`` imports
``vqlsp.engine.edits`` (the ``TokenEdit`` type) and must stay free of torch.
Import the pieces from their modules:

* ``edits``      ``TokenEdit``, ``apply_edits`` (torch-free)
* ``plan``       ``EditPlan``: which rows survive, move, leave, arrive (torch-free)
* ``positions``  ``exact`` / ``stable`` position-id policies
* ``state``      ``SessionState``: per-layer row buffers with capacity
* ``attention``  attention for a subset of rows: in full, or by accumulator updates
* ``session``    ``IncrementalSession``: the exact incremental update
* ``static_loop`` its layer loop without host syncs, on fixed-size row sets (``static_rows``),
                 replayed as CUDA graphs (``graphs``); ``sync_guard`` checks it on the CPU
* ``baselines``  ``DenseStrategy``, ``PrefixCacheStrategy`` (same interface)
* ``ops``        the one operation counter
* ``results``    ``UpdateStats``, ``Outputs``
"""
