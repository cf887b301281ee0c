"""Document text -> token edits (DESIGN.md, "Text -> token edits"). Never imports torch.

Modules, in dependency order:

* ``run``        a stretch of text with its tokens, cut only at tokenizer restart points
* ``tokenizer``  a Hugging Face fast tokenizer set up to tokenize documents
* ``store``      a document's runs in chunks, so a splice is O(chunk)
* ``realign``    which window to re-tokenize for a change, and where it re-aligns
* ``diff``       the fewest ``TokenEdit``s between a window's old and new ids
* ``document``   ``TokenizedDocument``: text, ids and spans kept in step per change
* ``positions``  LSP positions (UTF-8/16/32) <-> code-point offsets, via pygls's codec
* ``limits``     what the model sees of a document longer than its context
* ``markup``     what is not prose in Markdown, reStructuredText, LaTeX, git commit messages
* ``segments``   sentences and paragraphs of prose as character spans (the span head's units)
"""

from vqlsp.text.document import InvalidChange, TokenizedDocument
from vqlsp.text.limits import HeadWindow
from vqlsp.text.positions import InvalidRange, LineIndex
from vqlsp.text.tokenizer import TextTokenizer, UnsupportedTokenizer, load_tokenizer

__all__ = [
    "HeadWindow",
    "InvalidChange",
    "InvalidRange",
    "LineIndex",
    "TextTokenizer",
    "TokenizedDocument",
    "UnsupportedTokenizer",
    "load_tokenizer",
]
