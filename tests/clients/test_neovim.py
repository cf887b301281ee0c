"""The Neovim plugin against the real server: a headless Neovim 0.11 per session.

Each test runs one Lua script (tests/clients/nvim/) through the harness, which
reports every step; see conftest.run_nvim.
"""

from __future__ import annotations

import json

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
