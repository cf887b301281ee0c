"""One end-to-end session on the real default model (SmolLM2-135M + codebooks + BBC topic head)."""

from __future__ import annotations

from pathlib import Path

import pytest

import vqlsp

from .harness import Editor, doc_uri, editor_fixture, sha

editor = editor_fixture(["vscode-utf16"])
ARTICLE = (Path(vqlsp.__file__).parent / "samples" / "article.txt").read_text()


@pytest.mark.real_model
async def test_default_model_session(editor: Editor):
    await editor.initialize({"device": "cpu", "debounceMs": 0})
    uri = doc_uri("article.txt")
    editor.open(uri, ARTICLE)
    first = await editor.classification(uri, 1, timeout=300)
    assert set(first["probabilities"]) == {"business", "entertainment", "politics", "sports", "tech"}
    assert first["label"] in ("business", "tech") and first["engine"] == "incremental"
    # One keystroke in the middle: an incremental update of the same document, in sync.
    at = ARTICLE.index("Its chief executive")
    editor.change(uri, [(at, at, "A ")])
    got = await editor.classification(uri, timeout=120)
    assert not got["fullPass"] and got["reused_fraction"] > 0 and got["changedTokens"] <= 4
    assert got["textHash"] == sha(editor.texts[uri])
    await editor.assert_in_sync(uri)
    # The default model has no span head yet: no span diagnostics, but a versioned publish.
    assert list(await editor.diagnostics(uri)) == []
