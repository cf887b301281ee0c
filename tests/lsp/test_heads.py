"""Extra heads end to end: heads trained with ``vqlsp train-head`` on the tiny model, served
beside its own heads over real stdio, reloaded when the ``heads`` setting changes, and a head
that cannot be served reported while the model's own heads go on."""

from __future__ import annotations

import json
import random

import pytest
from lsprotocol import types

from vqlsp.cli import main

from .harness import PROSE, Editor, doc_uri, editor_fixture

editor = editor_fixture(["vscode-utf16"])


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """A document head ("mood"), a sentence head ("tone") and a paragraph head ("style") fitted on
    the tiny model's features."""
    root = tmp_path_factory.mktemp("extra-heads")
    rng = random.Random(0)
    words = {"calm": ["quiet", "gentle", "slow", "soft"], "loud": ["noisy", "sharp", "fast", "bright"]}
    rows = [(" ".join(rng.choice(words[label]) for _ in range(6)) + f" {i}.", label)
            for i in range(60) for label in [("calm", "loud")[i % 2]]]
    data = root / "moods.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    for name, kind, unit in (("mood", "document", "sentence"), ("tone", "span", "sentence"),
                             ("style", "span", "paragraph")):
        argv = ["train-head", str(data), "--kind", kind, "--out", str(root / name), "--base", str(tiny_model_dir),
                "--device", "cpu", "--no-cache", "--quiet", "--unit", unit]
        assert main(argv) == 0
    return root


def heads_of(editor: Editor, uri: str, names: set[str]):
    """The newest classification of ``uri`` whose document heads are ``names``."""
    def found():
        for c in reversed(editor.client.classifications):
            if c["uri"] == uri:
                return c if set(c["heads"]) == names else None
        return None
    return found


def group_by_head(diagnostics) -> dict[str, list]:
    """Diagnostics by the head that gave them (``data.head``), in order."""
    by_head: dict[str, list] = {}
    for d in diagnostics:
        by_head.setdefault(d.data["head"], []).append(d)
    return by_head


async def test_extra_heads_are_served_and_reloaded(editor: Editor, tiny_model_dir, trained):
    await editor.initialize({
        "model": str(tiny_model_dir), "heads": [str(trained / "mood"), str(trained / "tone")], "debounceMs": 0,
        "diagnostics": {"threshold": 0.0},
    })
    uri = doc_uri("heads.txt")
    editor.open(uri, PROSE)
    c = await editor.until(heads_of(editor, uri, {"document", "mood"}))
    assert c["label"] == c["heads"]["document"]["label"] and c["probabilities"] == c["heads"]["document"]["probabilities"]
    assert set(c["heads"]["mood"]["probabilities"]) == {"calm", "loud"}
    diagnostics = await editor.diagnostics(uri, 1)
    by_head = group_by_head(diagnostics)
    assert set(by_head) == {"span", "tone"} and len(by_head["span"]) == len(by_head["tone"]) == 5
    assert all(d.message.startswith("tone: sentence reads as ") for d in by_head["tone"])
    assert all(d.message.startswith("sentence reads as ") for d in by_head["span"])  # the model's own, as before
    assert [d.range for d in by_head["span"]] == [d.range for d in by_head["tone"]]

    # a heads change reloads the heads on the loaded model: no extra head any more
    editor.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"vqlsp": {"heads": []}}))
    await editor.until(heads_of(editor, uri, {"document"}))
    editor.change(uri, [(0, 0, "Now. ")])
    diagnostics = await editor.diagnostics(uri)
    assert {d.data["head"] for d in diagnostics} == {"span"}

    # a head that cannot be served is reported; the model's own heads and the good one go on
    editor.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"vqlsp": {"heads": [str(trained / "nowhere"), str(trained / "mood")]}}))
    message = await editor.until(lambda: next(
        (m for m in editor.client.messages if "cannot serve the head" in m.message), None))
    assert f"head file {trained / 'nowhere'} does not exist" in message.message
    await editor.until(heads_of(editor, uri, {"document", "mood"}))


async def test_each_span_head_reads_its_own_unit_and_hover_shows_every_head(editor: Editor, tiny_model_dir, trained):
    await editor.initialize({
        "model": str(tiny_model_dir), "heads": [str(trained / "style"), str(trained / "tone")], "debounceMs": 0,
        "diagnostics": {"threshold": 0.0},
    })
    uri = doc_uri("units.txt")
    editor.open(uri, PROSE)
    diagnostics = await editor.diagnostics(uri, 1)
    by_head = group_by_head(diagnostics)
    assert set(by_head) == {"span", "tone", "style"}
    assert len(by_head["span"]) == len(by_head["tone"]) == 5  # the model's own head and "tone": sentences
    assert {d.data["unit"] for d in by_head["tone"]} == {"sentence"}
    # "style" was trained on paragraphs: it reads PROSE's two paragraphs, whatever the other heads read
    assert len(by_head["style"]) == 2 and {d.data["unit"] for d in by_head["style"]} == {"paragraph"}
    assert all(d.message.startswith("style: paragraph reads as ") for d in by_head["style"])
    assert [(d.range.start.line, d.range.end.line) for d in by_head["style"]] == [(0, 0), (2, 3)]

    # hover in the second sentence: the model's own head first, then each extra head at that place
    hover = await editor.client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=40)))
    value = hover.contents.value
    own, tone, style = (value.index(t) for t in ("This sentence: **", "Head **tone**, this sentence: **",
                                                 "Head **style**, this paragraph: **"))
    assert own < tone < style or own < style < tone
    second = next(d for d in by_head["span"] if d.range.start.character > 0)  # "It approved the budget ..."
    assert f"This sentence: **{second.data['label']}** ({second.data['probability']:.0%})" in value
    assert value.count("| sentence label | probability |") == 2 and value.count("| paragraph label |") == 1


def test_heads_option_parsing():
    from vqlsp.lsp.options import Options, changed_fields, parse_options

    options, problems = parse_options({"heads": ["/a", "/b/head.safetensors"]})
    assert options.heads == ("/a", "/b/head.safetensors") and problems == []
    assert changed_fields(Options(), options) == {"heads"}
    for bad in ("/a", [1], [""], {"x": 1}):
        options, problems = parse_options({"heads": bad})
        assert options.heads == () and problems == ["invalid option 'heads': must be a list of paths (using [])"]
    assert parse_options({"heads": None})[0].heads == ()
