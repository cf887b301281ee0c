"""Compute analyses of dynamic networks (issue 15, section 4): which text needs how much compute.

Each dynamic method is a small *compute meter* that says, per example and per token,
how much work it spent:

* ``trace``       one instrumented dense pass: per-layer states, MLP activations, ACM learners
* ``probes``      early exit: per-layer linear probes fitted on validation, and the first
                  layer at which one is confident enough
* ``reuse``       incremental reuse: rows the engine recomputes when a token is edited
* ``activations`` exact zeros (ReLU) and near-zeros (SwiGLU) of MLP activations per layer
* ``agreement``   rankings of examples by each meter, and how well they agree
* ``heatmap``     one document's per-token compute as HTML and PNG
* ``document``    ``vqlsp analyze FILE``: the meters over one text, cut into sections as the server does
* ``suite``       ``vqlsp analyze --test-sets``: the meters over the default tasks' test sets,
                  with the JSON, plots and Markdown report (``report``)

Reference for ACM: Wójcik et al., *Adaptive Computation Modules*, arXiv 2312.10193.
"""
