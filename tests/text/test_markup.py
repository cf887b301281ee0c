"""Markup-aware spans (issue 17): sentences and paragraphs of Markdown, reStructuredText,
LaTeX and git commit messages hold only prose, and sections are cut only where it is safe.

The fixtures under ``fixtures/`` are files of each kind written for these tests. What every
span must satisfy (``assert_spans_respect_markup``): it starts and ends on prose, it contains
no block markup, and inline markup (code, math, a URL) lies wholly inside it or wholly
outside it -- inline markup inside a sentence does not end it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqlsp.text.markup import LANGUAGES, Kind, markup_regions, scan
from vqlsp.text.segments import paragraph_starts, paragraphs, segment, sentences

FIXTURES = Path(__file__).parent / "fixtures"
CASES = {
    "README.md": "markdown",
    "guide.rst": "restructuredtext",
    "paper.tex": "latex",
    "COMMIT_EDITMSG": "git-commit",
}


def load(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def spans_text(text: str, spans) -> list[str]:
    return [text[s.start : s.end] for s in spans]


def assert_spans_respect_markup(text: str, language: str, spans) -> None:
    markup = scan(text, language)
    owner = [-1] * len(text)
    last_end = 0
    for index, (start, end, _) in enumerate(markup.regions):
        assert last_end <= start < end <= len(text), "regions are sorted, non-overlapping, in the text"
        owner[start:end] = [index] * (end - start)
        last_end = end
    for span in spans:
        snippet = repr(text[span.start : span.end])
        assert owner[span.start] == -1 and owner[span.end - 1] == -1, f"span starts or ends on markup: {snippet}"
        assert not text[span.start].isspace() and not text[span.end - 1].isspace(), snippet
        for index in set(owner[span.start : span.end]) - {-1}:
            start, end, kind = markup.regions[index]
            assert kind != Kind.BLOCK, f"block markup {text[start:end]!r} inside {snippet}"
            assert span.start <= start and end <= span.end, f"markup {text[start:end]!r} across the edge of {snippet}"


def assert_safe_cut(text: str, markup, start: int) -> None:
    """A cut leaves nothing of its line but whitespace before it, and falls inside no markup
    and no range that must stay whole."""
    line = text.rfind("\n", 0, start) + 1
    assert not text[line:start].strip(), f"cut after {text[line:start]!r} on its line"
    assert not markup.inside(start), f"cut inside markup: {text[start : start + 30]!r}"


def in_some_span(spans, start: int, end: int) -> bool:
    return any(s.start <= start and end <= s.end for s in spans)


def occurrences(text: str, snippet: str) -> list[tuple[int, int]]:
    found = [(m.start(), m.end()) for m in re.finditer(re.escape(snippet), text)]
    assert found, f"{snippet!r} is not in the fixture"
    return found


# What each fixture must give: sentences found exactly, markup that no span may touch, prose
# (from headings, list items, link texts, table cells, captions) that must be in a sentence.
EXPECTED = {
    "README.md": {
        "sentences": [
            "Quillmate",
            "It runs as a language server, so any editor with an LSP client can\nuse it.",
            "Install the package with `pip install quillmate` and check that the\n"
            "`quillmate --version` command prints a version.",
            "Windows users should read the [installation notes](docs/install.md#windows \"Windows notes\")\nfirst.",
            "Settings live in `quillmate.toml` at the root of your project:",
            "A threshold of\n$t = 0.8$ works well for most prose, and the expected number of flags grows\n"
            "roughly like $$\\sum_i p_i$$ over the document.",
            "Minimum confidence to flag",
            "The server re-reads only the changed part of the document.",
            "Diagnostics come back within a few *milliseconds*.",
            "Later starts take about a second.",
            "Why not a grammar checker?",
            "Bug reports are welcome at https://github.com/example/quillmate/issues, and\n"
            "questions can go to <quillmate@example.org>.",
        ],
        "not_prose": [
            "title:",
            "Flags unclear sentences as you write.",
            "docs/logo.svg",
            "Quillmate logo",
            "https://ci.example.org/quillmate/badge.svg",
            "$ pip install quillmate",
            "threshold = 0.8",
            'ignore = ["passive-voice"]',
            "|-------------|",
            "TODO: add a screenshot",
            "<details>",
            "[docs]: https://quillmate.example.org/docs",
            "## ",
            "1. ",
        ],
        "markup": ["`pip install quillmate`", "$t = 0.8$", '](docs/install.md#windows "Windows notes")', "<quillmate@example.org>"],
        "prose": ["installation notes", "Meaning", "Labels that are never shown", "How it works", "the weights ship with", "Note:"],
    },
    "guide.rst": {
        "sentences": [
            "User guide",
            "Start the server from a terminal:",
            "See :ref:`editor-setup` and the\n`LSP specification <https://microsoft.github.io/language-server-protocol/>`_ for\n"
            "details; the :py:func:`quillmate.serve` function does the same from Python.",
            "The first start may take a few seconds.",
            "Later starts are faster.",
            "Never expose the TCP port to the internet.",
            "It defaults to 0.8.",
            "Use *ignore* for labels that do not fit your style.",
            "The score is computed as :math:`s = \\max_i p_i`, as described in [Lee2023]_.",
            "The explanations are written by hand.",
            "Labels can be ignored per file.",
            "Questions go to https://example.org/forum or to the mailing list.",
        ],
        "not_prose": [
            ".. _user-guide:",
            "==========",
            "On this page",
            "$ quillmate serve --stdio",
            "listening on stdin",
            ".. note::",
            "from quillmate import serve",
            ":caption: embed.py",
            "replace:: ``QM101``",
            ".. versionadded:: 2.1",
            "s = \\max_i p_i\n",
            '>>> check("This sentence is fine.")',
            "images/diagnostics.png",
            "the diagnostics panel",
            "This comment is not rendered.",
            "Neither is this line.",
        ],
        "markup": [":ref:`editor-setup`", " <https://microsoft.github.io/language-server-protocol/>`_", "[Lee2023]_", "|code|", "[#]_"],
        "prose": ["LSP specification", "Ada Example", "Running the server", "lists labels that are never reported"],
    },
    "paper.tex": {
        "sentences": [
            "Writers revise constantly.",
            "Method",
            "Let $x_1, \\dots, x_n$ be the tokens of a draft and $h_t \\in \\R^d$ the state of\ntoken~$t$.",
            "Each attention output is replaced by its nearest code,\n\\begin{equation}\n"
            "  z_t = \\arg\\min_{c \\in C} \\lVert h_t - c \\rVert_2 ,\n  \\label{eq:vq}\n\\end{equation}\n"
            "where $C$ is a learned codebook.",
            "The idea goes back to \\citet{sharir2023}, and similar caches\nappear in streaming models~\\cite{wang2021,li2022}.",
            "A code is stable when the gap to the second-nearest code is large:",
            "About 95\\% of all rows keep their codes after a typical edit.",
            "The remaining rows are\nrecomputed exactly.",
            "Revision.",
            "A revision rewrites a whole clause.",
            "Rows recomputed per edit, by layer.",
            "Cost of an edit.",
            "The code is available at \\url{https://example.org/quill} and on\n\\href{https://example.org/mirror}{our mirror}.",
        ],
        "not_prose": [
            "\\documentclass",
            "Reading Drafts Incrementally",
            "Ada Example",
            "\\begin{abstract}",
            "\\label{sec:method}",
            "The notation follows the earlier tech report.",
            "m_t = \\tfrac",
            "Measured\non the news corpus",
            "\\begin{itemize}",
            "figures/rows.pdf",
            "session.apply(edit)",
            "print(session.labels())",
            "{lrr}",
            "\\toprule",
            "plainnat",
        ],
        "markup": ["\\label{eq:vq}", "\\ref{sec:results}", "\\citet{sharir2023}", "\\url{https://example.org/quill}"],
        "prose": ["Margins", "adds one token at a time", "Rows changed", "Speed-up", "our mirror"],
    },
    "COMMIT_EDITMSG": {
        "sentences": [
            "re-read only the edited paragraph",
            "The server used to re-run the model over the whole document after every\nkeystroke.",
            "The cache key is the paragraph's text, so `undo` hits the cache too.",
            "See\nhttps://example.org/design/caching for the measurements.",
            "Paragraphs are cut at blank lines.",
            "A paragraph longer than 512 tokens falls back to a full pass.",
            "To try it:",
        ],
        "not_prose": [
            "feat(server): ",
            "quillmate serve --stdio --cache paragraphs",
            "Closes: #128",
            "Signed-off-by: Ada Example",
            "Please enter the commit message",
            "# On branch",
            ">8",
            "Everything below it will be ignored.",
            "Only the changed paragraph is recomputed.",
        ],
        "markup": ["`undo`", "https://example.org/design/caching"],
        "prose": ["edited paragraph", "feel instant again"],
    },
}


@pytest.mark.parametrize("name", CASES)
def test_fixture_sentences_hold_only_prose(name):
    text, language = load(name), CASES[name]
    expected = EXPECTED[name]
    found = segment(text, "sentence", language)
    assert_spans_respect_markup(text, language, found)
    assert_spans_respect_markup(text, language, segment(text, "paragraph", language))
    got = spans_text(text, found)
    for sentence in expected["sentences"]:
        assert sentence in got, f"{sentence!r} not among {got}"
    for snippet in expected["not_prose"]:
        for start, end in occurrences(text, snippet):
            assert not any(s.start < end and start < s.end for s in found), f"{snippet!r} is in a span"
    regions = markup_regions(text, language)
    for snippet in expected["markup"]:
        for start, end in occurrences(text, snippet):
            assert any(a <= start and end <= b for a, b in regions), f"{snippet!r} is not markup"
    for phrase in expected["prose"]:
        assert any(in_some_span(found, a, b) for a, b in occurrences(text, phrase)), f"{phrase!r} is in no sentence"


@pytest.mark.parametrize("name", CASES)
def test_fixture_prose_is_covered(name):
    """Every word that is not markup lies in a sentence, and in a paragraph."""
    text, language = load(name), CASES[name]
    regions = markup_regions(text, language)
    marked = bytearray(len(text))
    for a, b in regions:
        marked[a:b] = b"\1" * (b - a)
    for unit in ("sentence", "paragraph"):
        spans = segment(text, unit, language)
        covered = bytearray(len(text))
        for s in spans:
            covered[s.start : s.end] = b"\1" * (s.end - s.start)
        for word in re.finditer(r"\w+", text):
            if not any(marked[word.start() : word.end()]):
                assert all(covered[word.start() : word.end()]), f"{word.group()!r} at {word.start()} is in no {unit}"


@pytest.mark.parametrize("name", CASES)
def test_fixture_paragraph_starts_are_safe(name):
    text, language = load(name), CASES[name]
    markup = scan(text, language)
    starts = paragraph_starts(text, language)
    assert starts == sorted(set(starts)) and starts
    for start in starts:
        assert_safe_cut(text, markup, start)
    # Every prose paragraph that starts a line after nothing but markup is reachable by a cut.
    paras = segment(text, "paragraph", language)
    assert len(starts) <= len(paras)


def test_paragraph_starts_of_the_fixtures():
    def first_lines(name):
        text = load(name)
        return [text[s : text.find("\n", s)] for s in paragraph_starts(text, CASES[name])]

    # The heading's "#" stays with its title; a paragraph starts at its line; none inside the
    # front matter, the code blocks, the table or the HTML block's first line alone.
    assert first_lines("README.md") == [
        "# Quillmate",
        "Quillmate reads your drafts while you type and marks sentences that readers may",
        "## Installation",
        "Install the package with `pip install quillmate` and check that the",
        'Windows users should read the [installation notes](docs/install.md#windows "Windows notes")',
        "## Configuration",
        "Settings live in `quillmate.toml` at the root of your project:",
        "The **threshold** decides how confident the model must be before it flags a",
        "| Setting     | Default | Meaning                    |",
        "## How it works",
        "1. The editor sends every change to the server.",
        "2. The server re-reads only the changed part of the document.",
        "3. Diagnostics come back within a few *milliseconds*.",
        "> **Note:** the first start downloads nothing; the weights ship with",
        ">",
        "<details>",
        "Grammar checkers look for errors. Quillmate looks for sentences that are hard",
        "## Contributing",
        "Bug reports are welcome at https://github.com/example/quillmate/issues, and",
    ]
    # A section title with the \label and comment under it; environments only whole.
    assert first_lines("paper.tex") == [
        "\\begin{abstract}",
        "\\section{Method}",
        "\\label{sec:method}",
        "\\subsection{Margins}",
        "A code is stable when the gap to the second-nearest code is large:",
        "\\begin{itemize}",
        "\\begin{figure}[t]",
        "\\begin{table}[h]",
        "The code is available at \\url{https://example.org/quill} and on",
    ]


def test_paragraph_starts_never_inside_blocks_with_blank_lines():
    markdown = "Intro text.\n\n```\nfirst line\n\nNot prose.\n```\n\n---\n\nAfter the rule.\n"
    assert [markdown[s : s + 5] for s in paragraph_starts(markdown, "markdown")] == ["Intro", "After"]
    front = "---\ntitle: x\n\nsummary: y\n---\n\nBody text.\n"
    assert [front[s : s + 4] for s in paragraph_starts(front, "markdown")] == ["Body"]
    latex = (
        "Before.\n\n\\begin{itemize}\n\\item One.\n\n\\item Two.\n\\end{itemize}\n\n"
        "\\begin{equation}\na = b\n\n\\end{equation}\n\nAfter.\n"
    )
    assert [latex[s : s + 8] for s in paragraph_starts(latex, "latex")] == ["Before.\n", "\\begin{i", "After.\n"]


# -- decisions, one language at a time --------------------------------------------------------


def sents(text: str, language: str) -> list[str]:
    return spans_text(text, segment(text, "sentence", language))


def paras(text: str, language: str) -> list[str]:
    return spans_text(text, segment(text, "paragraph", language))


def test_markdown_decisions():
    # Inline code and math stay inside their sentence, whatever they hold.
    assert sents("Run `a. b` now. Then $x. y$ works.", "markdown") == ["Run `a. b` now.", "Then $x. y$ works."]
    # A code block separates paragraphs even without blank lines around it.
    assert paras("One line\n```\ncode\n```\nTwo line", "markdown") == ["One line", "Two line"]
    # A heading, list items and table cells are their own paragraphs; their markers are not prose.
    assert paras("# Title\nText here.\n- first item\n- second item", "markdown") == [
        "Title", "Text here.", "first item", "second item",
    ]  # fmt: skip
    assert paras("| a | b c |\n|---|---|\n| d | e |", "markdown") == ["a", "b c", "d", "e"]
    # Link text is prose, the URL is not; emphasis markers do not hide a sentence end.
    assert sents("See [the docs](https://x.org/a_b). This is *done.* Next one.", "markdown") == [
        "See [the docs](https://x.org/a_b).", "This is *done.", "Next one.",
    ]  # fmt: skip
    assert markup_regions("[the docs](https://x.org)", "markdown") == [(0, 1), (9, 25)]
    # A span of only markup is dropped; a sentence never starts with what inline code leaves.
    assert sents("![logo](logo.png)\n\n`--fast`: runs faster.", "markdown") == ["runs faster."]
    # snake_case and 2*3 are prose, not emphasis.
    assert markup_regions("use snake_case_names and 2*3", "markdown") == []


def test_restructuredtext_decisions():
    text = "Example::\n\n    code. More code.\n\nProse again."
    assert sents(text, "restructuredtext") == ["Example:", "Prose again."]
    text = ".. note:: A note. It is prose.\n\n.. code-block:: python\n\n   x = 1. Not prose.\n"
    assert sents(text, "restructuredtext") == ["A note.", "It is prose."]
    # Roles are markup except the prose ones; a reference's text is prose.
    assert sents("Call :func:`run` and read :emphasis:`this` or `the guide <https://x.org>`_.", "restructuredtext") == [
        "Call :func:`run` and read :emphasis:`this` or `the guide <https://x.org>`_."
    ]
    regions = markup_regions(":emphasis:`this` `the guide <https://x.org>`_", "restructuredtext")
    assert regions == [(0, 11), (15, 16), (17, 18), (27, 45)]


def test_latex_decisions():
    # A section title is its own paragraph; \label, \ref and \cite arguments are not prose.
    text = "\\section{Results}\\label{sec:r}\nAs shown in Fig.~\\ref{f} and \\cite{k}, it works."
    assert paras(text, "latex") == ["Results", "As shown in Fig.~\\ref{f} and \\cite{k}, it works."]
    assert "sec:r" not in "".join(sents(text, "latex"))
    # Display math ending with a full stop ends its sentence; with a comma it does not.
    stop = "We have\n\\[ x = 1. \\]\nThen y follows."
    assert sents(stop, "latex") == ["We have", "Then y follows."]
    comma = "We have\n\\begin{equation}\n x = 1, \\label{e}\n\\end{equation}\nwhere x is one."
    assert sents(comma, "latex") == [comma]
    # Comments are not prose and do not break a paragraph; \% is a percent sign.
    assert paras("Half % not this\nof 50\\% rows.", "latex") == ["Half % not this\nof 50\\% rows."]
    assert markup_regions("50\\% rows", "latex") == [(2, 3)]
    # \emph's argument is prose; \footnote's and \texttt's are not.
    assert sents("An \\emph{odd} case\\footnote{A note.} of \\texttt{x.y} here.", "latex") == [
        "An \\emph{odd} case\\footnote{A note.} of \\texttt{x.y} here."
    ]
    assert markup_regions("\\emph{odd}\\footnote{A note.}", "latex") == [(0, 6), (9, 28)]


def test_git_commit_decisions():
    text = "fix(lsp): publish once\nThe body.\n# a comment line. Not prose.\nMore body."
    assert paras(text, "git-commit") == ["publish once", "The body.", "More body."]
    text = "Subject\n\nBody.\n\nSigned-off-by: A <a@b.org>\n# ------------------------ >8 ------------------------\n+Diff. Text.\n"
    assert sents(text, "git-commit") == ["Subject", "Body."]
    # A paragraph that is not all trailers stays prose.
    assert sents("Subject\n\nNote: this is prose.", "git-commit") == ["Subject", "Note: this is prose."]


# -- plain text is unchanged; languages ----------------------------------------------------


def test_plaintext_and_unknown_languages_are_plain():
    text = load("README.md")
    for unit, plain in (("sentence", sentences), ("paragraph", paragraphs)):
        assert segment(text, unit) == segment(text, unit, "plaintext") == plain(text)
        assert segment(text, unit, "python") == plain(text)
    assert paragraph_starts(text) == [p.start for p in paragraphs(text)]
    assert markup_regions(text, "plaintext") == [] and markup_regions(text, "no-such-language") == []
    assert set(LANGUAGES) == {"markdown", "restructuredtext", "latex", "tex", "git-commit", "plaintext"}
    assert segment(load("paper.tex"), "sentence", "tex") == segment(load("paper.tex"), "sentence", "latex")
    with pytest.raises(ValueError, match="unknown unit"):
        segment(text, "word", "markdown")


# -- property: random mixtures of prose and markup --------------------------------------------

# Prose without markup characters, no word a list enumerator could be ("did." is roman).
PROSE = ["The cat sat.", "Writers revise", "constantly", "It works!", "Really?", "e.g. this", "and", "Dr. Smith arrived.", "so"]
SEPARATORS = [" ", "\n", "\n\n"]
# A fragment is its parts: markup (a str) or prose (a 1-tuple holding the str).
MARKUP = {
    "markdown": [
        "`code. here`",
        "``a ` b``",
        "$x^2$",
        ("[", ("link text",), "](https://example.org/a_b)"),
        "![alt text](img.png)",
        "<b>",
        "<!-- hidden. -->",
        "https://example.org/page",
        ("*", ("stress",), "*"),
        "\n\n```python\nprint('Hi. There.')\n```\n\n",
        "\n\n~~~\ncode. More code.\n~~~\n\n",
        "\n\n$$\nE = mc^2.\n$$\n\n",
        "\n\n## ",
        "\n- ",
        "\n> ",
    ],
    "restructuredtext": [
        "``literal. text``",
        ":ref:`target`",
        ("`", ("guide text",), " <https://x.org>`_"),
        "|sub|",
        "[1]_",
        "https://example.org",
        ("*", ("stress",), "*"),
        "\n\n.. code-block:: python\n\n   print('Hi. There.')\n\n",
        "\n\n.. A comment. Really.\n\n",
        ("\n\n", ("Example:",), ":\n\n    literal. Text.\n\n"),
    ],
    "latex": [
        "$x^2$",
        "\\cite{key}",
        "\\ref{fig:a}",
        "\\label{sec:x}",
        "% a comment. Yes.\n",
        ("\\emph{", ("word",), "}"),
        ("\\section{", ("Title words",), "}"),
        "\\[ a = b. \\]",
        "\\url{https://x.org}",
        "\\footnote{Some note.}",
        ("\\", ("%",)),
        "\n\n\\begin{verbatim}\nraw. Text.\n\\end{verbatim}\n\n",
        "\n\n\\begin{equation}\nx = 1\n\\end{equation}\n\n",
    ],
    "git-commit": [
        "`code. here`",
        "https://example.org/x",
        "\n# A comment. Yes.\n",
        "\n\n    indented. Code.\n\n",
        "\n\n```\nfenced. Code.\n```\n\n",
        "\n- ",
    ],
}


@st.composite
def mixtures(draw, language: str):
    """A document of prose and ``language``'s markup fragments, and which characters are markup."""
    pool = [((p,),) for p in PROSE] + [f if isinstance(f, tuple) else (f,) for f in MARKUP[language]]
    text, mask = "", ""
    for fragment in draw(st.lists(st.sampled_from(pool), min_size=1, max_size=14)):
        sep = draw(st.sampled_from(SEPARATORS))
        if sep == " " and text.endswith("\n"):
            sep = ""  # an indented line after a block is the block's content in rST
        text += sep
        mask += " " * len(sep)
        for part in fragment:
            prose = isinstance(part, tuple)
            part = part[0] if prose else part
            text += part
            mask += ("." if prose else "x") * len(part)
    if language == "git-commit" and draw(st.booleans()):
        tail = "\n# ------------------------ >8 ------------------------\ndiff --git a/x b/x\n+Prose. Like text.\n"
        text, mask = text + tail, mask + "x" * len(tail)
    return text, mask


def check_mixture(text: str, mask: str, language: str) -> None:
    regions = markup_regions(text, language)
    marked = bytearray(len(text))
    for a, b in regions:
        marked[a:b] = b"\1" * (b - a)
    for i, (ch, m) in enumerate(zip(text, mask)):
        if not ch.isspace():
            assert bool(marked[i]) == (m == "x"), f"{ch!r} at {i} in {text!r}: markup expected {m == 'x'}"
    for unit, plain in (("sentence", sentences), ("paragraph", paragraphs)):
        spans = segment(text, unit, language)
        assert_spans_respect_markup(text, language, spans)
        for word in re.finditer(r"\w+", text):
            if mask[word.start()] == ".":
                assert in_some_span(spans, word.start(), word.end()), f"{word.group()!r} in no {unit}: {text!r}"
        assert segment(text, unit, "plaintext") == segment(text, unit) == plain(text)
    markup = scan(text, language)
    for start in paragraph_starts(text, language):
        assert_safe_cut(text, markup, start)


@pytest.mark.parametrize("language", list(MARKUP))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_mixtures_of_prose_and_markup(language, data):
    text, mask = data.draw(mixtures(language))
    check_mixture(text, mask, language)


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.sampled_from(PROSE), min_size=1, max_size=12), seps=st.lists(st.sampled_from(SEPARATORS), min_size=12, max_size=12))
def test_pure_prose_splits_as_plain_text(words, seps):
    text = "".join(sep + word for sep, word in zip(seps, words))
    for language in ("markdown", "restructuredtext", "latex"):
        for unit in ("sentence", "paragraph"):
            assert segment(text, unit, language) == segment(text, unit), (language, text)
        assert paragraph_starts(text, language) == paragraph_starts(text)


# Pieces of every language's syntax, unbalanced on purpose: no scanner may fail or let a span
# touch markup, whatever the mixture.
ATOMS = [
    "\n", "\n\n", " ", "    ", "\t", "\r\n", "word", "The end.", "```", "~~~", "`", "$", "$$", "\\",
    "\\[", "\\]", "{", "}", "[", "]", "(", ")", "<", ">", "<!--", "-->", "# ", "## ", "*", "**", "_",
    "|", "---", "===", "- ", "1. ", "> ", "::", ".. ", ".. note::", ".. code-block::", "``", ":ref:",
    "`_", "|sub|", ">>> ", "%", "&", "~", "\\begin{itemize}", "\\end{itemize}", "\\begin{verbatim}",
    "\\end{verbatim}", "\\begin{equation}", "\\end{equation}", "\\section{", "\\item", "\\item[",
    "\\cite{", "\\verb|", "\\footnote{", "\\\\", "https://x.org/a", "a@b.org", "<b>", "<details>",
    "<pre>", "Signed-off-by: A", "# ------------------------ >8 ------------------------", "diff --git ",
    "\\begin{document}", "\\end{document}", "+++", "...", "é", "日本",
]  # fmt: skip


@pytest.mark.parametrize("language", list(MARKUP))
@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.sampled_from(ATOMS), max_size=40))
def test_any_mixture_of_syntax(language, parts):
    text = "".join(parts)
    markup = scan(text, language)
    for unit in ("sentence", "paragraph"):
        assert_spans_respect_markup(text, language, segment(text, unit, language))
    for start in paragraph_starts(text, language):
        assert_safe_cut(text, markup, start)
