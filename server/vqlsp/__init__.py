"""vqlsp: a language server that classifies prose as it is written.

It runs an incrementally computable transformer (a pretrained decoder LM with
vector-quantized attention outputs, after Sharir & Anandkumar, arXiv 2307.14988)
and pays per keystroke only for what the keystroke changed.
"""

__version__ = "0.1.0"
