"""A diagnostic never sits on markup: real Markdown, reStructuredText, LaTeX and commit
messages (the text layer's fixtures) through the server, every span diagnostic checked
against the markup the text layer finds (the tiny model flags every sentence).

Markup is read per section, with the section before it as context: a construct that
needs what comes after a cut to be recognised (a LaTeX preamble longer than a section,
whose end is ``\begin{document}``) can still be misread at very small section sizes."""

from __future__ import annotations

from pathlib import Path

from vqlsp.text.markup import Kind, scan

from .harness import Editor, doc_uri, editor_fixture

editor = editor_fixture(["vscode-utf32"])  # code-point positions: offsets are easy to check
FIXTURES = Path(__file__).parent.parent / "text" / "fixtures"
CASES = [("README.md", "markdown"), ("guide.rst", "restructuredtext"), ("paper.tex", "latex"),
         ("COMMIT_EDITMSG", "git-commit")]


def _offset(text: str, position) -> int:
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[: position.line]) + position.character


async def test_span_diagnostics_never_sit_on_markup(editor: Editor, tiny_model_dir):
    await editor.initialize({"model": str(tiny_model_dir), "device": "cpu",
                             "languages": [language for _, language in CASES]})
    for name, language in CASES:
        text = (FIXTURES / name).read_text(encoding="utf-8")
        uri = doc_uri(name)
        editor.open(uri, text, language_id=language)
        await editor.until(lambda uri=uri: next((c for c in editor.client.classifications if c["uri"] == uri
                                                  and c["sections"] == c["sectionsAnalysed"]), None))
        diagnostics = await editor.diagnostics(uri, 1)
        markup = scan(text, language)
        assert diagnostics, name
        for d in diagnostics:
            start, end = _offset(text, d.range.start), _offset(text, d.range.end)
            assert not markup.inside(start, keep=False) and not markup.inside(end, keep=False), (name, text[start:end])
            assert not any(r.kind == Kind.BLOCK and r.start < end and start < r.end for r in markup.regions), (
                name, text[start:end])
            assert text[start:end].strip() and not text[start].isspace()
        if language == "markdown":  # nothing from a code block or the front matter
            shown = " ".join(text[_offset(text, d.range.start) : _offset(text, d.range.end)] for d in diagnostics)
            assert "pip install quillmate\n" not in shown and "title:" not in shown
